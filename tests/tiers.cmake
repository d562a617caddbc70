# Test tiers: every gtest gets one ctest label and requires only the Python fixtures it reads.
#   unit    no Python fixture; `ctest -L unit` runs right after a build (a few run the CLI too)
#   oracle  in-process comparisons with data the Python oracles wrote (transformers, peft,
#           tokenizers, gguf-py, llama.cpp)
#   e2e     runs the `retort` CLI on fixtures (often checked by an oracle script afterwards)
#   gpu     needs CUDA; skipped where there is none
# A suite (or test) not listed below still runs, labelled `untiered`, with every fixture, and the
# test tiers.complete fails until it is given a tier.
#
# The timeout catches hangs, not slowness: the heaviest tests take about 130 s at ctest -j2 on 2
# cores, and four times that when `make check JOBS=8` runs 8 at once there.
set(RETORT_TIER_PATTERNS)

# retort_test_tier(LABEL FIXTURE PATTERN...): gtest name patterns (Suite.* or Suite.Test) whose
# tests get LABEL and need the fixture setup FIXTURE ("" for none, or a fixture_a+b pair).
function(retort_test_tier label fixture)
  set(patterns ${ARGN})
  list(JOIN patterns ":" filter)
  set(properties LABELS ${label} TIMEOUT 1800)
  if(fixture)
    list(APPEND properties FIXTURES_REQUIRED ${fixture})
  endif()
  gtest_discover_tests(retort_tests DISCOVERY_TIMEOUT 120 TEST_FILTER "${filter}" PROPERTIES ${properties})
  set(RETORT_TIER_PATTERNS ${RETORT_TIER_PATTERNS} ${patterns} PARENT_SCOPE)
endfunction()

retort_test_tier(unit ""
  Layers.* TrainerSeams.* TrainingMethods.* ProjectionStorage.* ModelFamilies.* CliArgs.* CliExitCodes.* CudaHost.* DistillCacheCodec.* Error.* ExitCodes.* GgufWriter.*
  LoraDropout.* Losses.* ModelConfig.* Precision.* Recipe.* SafetensorsWriter.* Schedules.* Text.* TorchSmoke.*
  ChatTemplate.MarksAssistantOutputAndItsEndOfTurnTrainable ChatTemplate.AttributesSegmentsToMessagesAndFlagsSpecialTokens
  ChatTemplate.ExposesStopStrings ChatTemplate.RejectsBadInputClearly ChatTemplate.Qwen3TrainsReasoningOnlyWhenAsked
  CpuGemm.ProductsAndAccumulationMatchFloat64InEveryLayout CpuGemm.LinearForwardAndGradientsMatchFloat64
  CpuGemm.LinearAddAccumulatesIntoACopyOfTheBase CpuGemm.ManyDistinctTokenCountsKeepMemoryBounded
  CpuGemm.OtherDtypesKeepATensPath
  DataLoader.ValidationFractionHoldsOutDisjointExamples
  DistillLosses.ChunkedOverTheOutputProjectionEqualsUnchunked DistillLosses.BadSettingsAreRefusedWithTheValidOnes
  GgufDequant.ParallelChunksEqualBlockByBlock GgufDequant.Fp16ConversionEqualsC10ForAllInputs HubCache.*
  GgufModels.UnpermuteInvertsLlamaCppRowOrder ModelCli.UnsupportedArchitectureListsTheSupportedOnes
  SafetensorsBadInput.EveryMalformedFileIsRefusedWithFileAndTensor TensorBoard.Crc32cKnownValue
  TokenizerBadInput.UnsupportedModelTypeNamesFileAndKey)

retort_test_tier(oracle fixture_chat_templates
  ChatTemplate.RendersLikeTheRealTemplates ChatTemplate.RecognisesRealTemplates ChatTemplate.LoadsStoredTemplates
  ChatTemplate.Gemma3TemplateWeWriteRendersLikeGooglesTemplate)
retort_test_tier(oracle fixture_data
  DataBadInput.* DataFormats.* DataLength.* DataMasking.* DataTokenizerConfig.* DataMasks.*
  DataLoader.RestoredStateGivesTheSameNextBatches DataLoader.ShufflesBySeedAndEpochCoversEveryExampleAndEnds
  DataLoader.RanksSliceEachGlobalBatchInOrderAndResumeAcrossWorldSizes
  DataControlTokens.ParseEqualsHfLiteralEqualsLlamaCppSpecialFalseMasksExact
  DataControlTokens.LiteralTrainsTheStringAsTheSpeakersWords)
retort_test_tier(e2e fixture_data DataInspectCli.* DataControlTokens.CountedSkippedAndSummarised)
retort_test_tier(oracle fixture_models DataPacking.* DistillStep.* ModelDtypes.* *ModelParity.*)
retort_test_tier(e2e fixture_models ModelCli.LogitsCommandWritesTransformersLogits
  ModelCli.GenerateJsonMatchesTransformersGreedy ModelCli.SamplingIsReproducibleBySeed ModelCli.EvalLossEqualsTransformers
  ModelCli.BadInputExitsTwoWithOneClearMessage)
retort_test_tier(gpu fixture_models DistillCuda.*)
retort_test_tier(oracle fixture_distill DistillLosses.EveryDivergenceAndGradientEqualsTheFloat64Formula
  DistillLosses.SparseWithEveryTokenEqualsDense)
retort_test_tier(e2e fixture_export HubCacheCli.* DistillCache.* DistillKd.* DistillRun.* DistillSyntheticData.* DistillTeacher.*
  DistillPrune.* ExportCli.* ExportPeft.*)
retort_test_tier(e2e fixture_export+smollm2 ExportHf.*)
# check_modelfile.py renders the exported Modelfiles with fixture_ollama's Go oracle.
retort_test_tier(e2e fixture_export+ollama+smollm2 ExportGguf.* ExportSmolLM2.*)
retort_test_tier(oracle fixture_export+smollm2 DistillVocabulary.*)
retort_test_tier(e2e fixture_smollm2 DistillRecipe.* RunCli.* TextCli.*)
retort_test_tier(oracle fixture_smollm2 SmolLM2.*)
retort_test_tier(oracle fixture_nf4 QuantizedBase.*)
retort_test_tier(oracle fixture_gguf GgufKeep.EveryKeptBlockTypeComputesAsGgufPyDequantized)
retort_test_tier(oracle fixture_gguf_models GgufKeep.ModelsComputeExactlyAsTheSameFileLoadedDense)
retort_test_tier(oracle fixture_smollm2 GgufKeep.SmolLM2Q4_1KeptAsStoredContinuesAsLlamaCpp
  GgufKeep.CacheTeacherFromTheGgufAsStoredWritesWhatTheDenseLoadWrites)
retort_test_tier(oracle fixture_gemma3 Gemma3Gguf.*)
retort_test_tier(e2e fixture_gemma3 Gemma3Cli.*)
retort_test_tier(e2e fixture_gemma3+ollama ExportGemma3.*)
retort_test_tier(oracle fixture_gguf GgufReader.* GgufTypes.* GgufDequant.EveryTensorEqualsGgufPyBitForBit
  GgufDequant.UnsupportedTypesNameTheTensorAndTheSupportedOnes GgufDequant.LoadingAMissingTensorNamesIt)
retort_test_tier(oracle fixture_gguf_models GgufModels.LogitsEqualTransformersOnTheStoredWeights
  GgufModels.ConfigComesFromMetadata)
retort_test_tier(e2e fixture_gguf_models GgufModels.BadFilesExitTwoNamingFileAndTensor)
retort_test_tier(oracle fixture_lora *PeftParity.*)
retort_test_tier(e2e fixture_lora PeftBadInput.* PeftCli.*)
retort_test_tier(oracle fixture_safetensors Safetensors.* SafetensorsBadInput.MissingTensorAndWrongShapeNameTheTensor)
retort_test_tier(e2e fixture_safetensors SafetensorsBadInput.CliExitsTwoNamingFileAndTensor)
retort_test_tier(oracle fixture_training Training.* CpuGemm.TrainingStepLossAndGradientsAgreeAcrossBackends
  TensorBoard.TheTensorboardPackageReadsOurEventFiles)
retort_test_tier(oracle fixture_tokenizer TokenizerGguf.* TokenizerJson.* TokenizerLiteral.* TokenizerSentencePiece.*
  TokenizerStream.* TokenizerTiktoken.* TokenizerBadInput.InvalidUtf8IsReplacedNotFatal)
retort_test_tier(unit "" MemoryPlan.*)
retort_test_tier(oracle fixture_ollama OllamaTemplate.*)
retort_test_tier(e2e fixture_ollama+smollm2 OllamaModelfile.*)

# Whatever no tier names: still run (with the two fixtures most tests use), and flagged.
list(JOIN RETORT_TIER_PATTERNS ":" tiered)
gtest_discover_tests(retort_tests DISCOVERY_TIMEOUT 120 TEST_FILTER "*-${tiered}"
  PROPERTIES LABELS untiered TIMEOUT 1800 FIXTURES_REQUIRED fixture_export+smollm2)
add_test(NAME tiers.complete COMMAND "${CMAKE_CTEST_COMMAND}" --test-dir "${CMAKE_BINARY_DIR}" -N -L untiered)
set_tests_properties(tiers.complete PROPERTIES LABELS unit PASS_REGULAR_EXPRESSION "Total Tests: 0")
