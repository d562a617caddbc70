// distill: the vocabulary check and the online KD step of the training loop.
#include <gtest/gtest.h>
#include <algorithm>
#include <chrono>
#include <thread>
#include <signal.h>

#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>

#include "distill/kd_step.h"
#include "distill/teacher.h"
#include "distill/vocabulary.h"
#include "io/atomic_file.h"
#include "io/error.h"
#include "models/loader.h"
#include "models/quantized_storage.h"
#include "test_support.h"
#include "test_support_fixtures.h"
#include "tokenizer/tokenizer.h"

namespace retort {
namespace {

TEST(DistillVocabulary, SameTokenizerPassesPaddedRowsAreSlicedOthersAreRefused) {
  const std::string smollm2 = nlohmann::json::parse(
      read_text_file((test::fixture_dir("smollm2") / "smollm2.json").string()))["gguf"];
  const auto a = load_tokenizer(smollm2);
  const auto b = load_tokenizer(smollm2);
  EXPECT_EQ(shared_vocabulary_size(*a, 49152, *b, 49152), 49152);
  EXPECT_EQ(shared_vocabulary_size(*a, 49280, *b, 49152), 49152);  // a teacher padded to a multiple of 128
  const auto llama3 = load_tokenizer((test::fixture_dir("export") / "llama3").string());
  const auto qwen2 = load_tokenizer((test::fixture_dir("export") / "qwen2").string());
  for (const auto& [teacher, student] : {std::pair{&*a, &*llama3}, std::pair{&*llama3, &*qwen2}}) {
    try {
      shared_vocabulary_size(*teacher, static_cast<int64_t>(teacher->vocab_size()), *student,
                             static_cast<int64_t>(student->vocab_size()));
      FAIL() << "different tokenizers accepted";
    } catch (const Error& error) {
      EXPECT_NE(std::string(error.what()).find("tokenizers differ"), std::string::npos) << error.what();
    }
  }
  EXPECT_THROW(shared_vocabulary_size(*a, 49152, *b, 49000), Error);  // an embedding smaller than its tokenizer
}

// The step's loss is alpha * sum of per-token divergences + (1 - alpha) * summed cross-entropy over
// the trained tokens, computed here from the two models' full logits; only the student learns. With
// padded embeddings (shared_vocab below the rows) the divergence sees the shared ids only and the
// cross-entropy every row.
TEST(DistillStep, LossIsAlphaKdPlusCrossEntropyOnTrainedTokensAndOnlyTheStudentLearns) {
  LoadedModel teacher = load_model((test::fixture_dir("models") / "llama_gqa").string());
  LoadedModel student = load_model((test::fixture_dir("models") / "qwen2_tied").string());
  const int64_t vocab = student.model->config().vocab_size;
  for (const int64_t shared : {vocab, vocab - 6}) {
    KdStepOptions options;
    options.kd.divergence = Divergence::kForwardKl;
    options.kd.temperature = 2.0;
    options.alpha = 0.7;
    options.shared_vocab = shared;
    options.chunk_tokens = 5;
    KdStep step(*student.model, *teacher.model, options);
    at::manual_seed(0);
    Batch batch;
    batch.input_ids = at::randint(2, vocab - 1, {2, 11}, at::kLong);
    batch.labels = batch.input_ids.clone();
    batch.labels.index_put_({0, at::indexing::Slice(0, 4)}, kIgnoreIndex);  // a prompt that is not trained
    for (auto& p : student.model->parameters()) p.mutable_grad() = at::Tensor();
    const StepResult result = step.forward(batch);
    result.loss_sum.backward();

    at::NoGradGuard no_grad;
    const at::Tensor student_logits = student.model->forward_logits(batch.input_ids).narrow(1, 0, 10).reshape({-1, vocab});
    const at::Tensor teacher_logits = teacher.model->forward_logits(batch.input_ids).narrow(1, 0, 10).reshape({-1, vocab});
    const at::Tensor targets = batch.labels.narrow(1, 1, 10).reshape({-1});
    const at::Tensor counted = (targets != kIgnoreIndex).nonzero().squeeze(1);
    const at::Tensor kd = token_divergence(student_logits.index_select(0, counted).narrow(1, 0, shared),
                                           teacher_logits.index_select(0, counted).narrow(1, 0, shared), options.kd)
                              .sum();
    const at::Tensor ce = at::cross_entropy_loss(student_logits.index_select(0, counted), targets.index_select(0, counted),
                                                 {}, at::Reduction::Sum);
    EXPECT_EQ(result.tokens, counted.size(0));
    EXPECT_NEAR(result.loss_sum.item<double>(), (0.7 * kd + 0.3 * ce).item<double>(), 1e-3) << "shared " << shared;
    for (const auto& [name, tensor] : step.named_trainable_parameters()) {
      ASSERT_TRUE(tensor.grad().defined()) << name;
    }
    for (const auto& p : teacher.model->parameters()) EXPECT_FALSE(p.grad().defined());
  }
}

// A teacher kept in NF4 (distill.teacher_quantize: nf4) teaches exactly what its dequantized
// dense weights would: the KD step's loss and the student's gradients agree to 1e-5.
TEST(DistillStep, Nf4TeacherStepEqualsTheStepWithItsDequantizedDenseWeights) {
  const std::string teacher_path = (test::fixture_dir("models") / "llama_gqa").string();
  TeacherLoadOptions nf4;
  nf4.dtype = at::kFloat;
  nf4.quantize = BaseQuantization::kNf4;
  LoadedModel quantized = load_teacher(teacher_path, nf4);
  LoadedModel dense = load_model(teacher_path);
  for (const auto& [name, projection] : decoder_projection_weights(*quantized.model)) {
    ASSERT_EQ(projection->storage().kind(), WeightStorageKind::kNf4) << name;
    assign_parameter(*dense.model, name, projection->dense_weight(at::kFloat), "dequantized");
  }
  auto step_of = [&](CausalLM& teacher) {
    LoadedModel student = load_model((test::fixture_dir("models") / "qwen2_tied").string());
    KdStepOptions options;
    options.kd.temperature = 2.0;
    options.alpha = 0.7;
    options.shared_vocab = student.model->config().vocab_size;
    KdStep step(*student.model, teacher, options);
    at::manual_seed(0);
    Batch batch;
    batch.input_ids = at::randint(2, options.shared_vocab - 1, {2, 11}, at::kLong);
    batch.labels = batch.input_ids.clone();
    const StepResult result = step.forward(batch);
    result.loss_sum.backward();
    std::vector<at::Tensor> out = {result.loss_sum.detach()};
    for (const auto& [name, tensor] : step.named_trainable_parameters()) out.push_back(tensor.grad().clone());
    return out;
  };
  const auto ours = step_of(*quantized.model), reference = step_of(*dense.model);
  ASSERT_EQ(ours.size(), reference.size());
  for (size_t i = 0; i < ours.size(); ++i) {
    const double scale = std::max(1e-6, reference[i].abs().max().item<double>());
    EXPECT_LE((ours[i] - reference[i]).abs().max().item<double>() / scale, 1e-5) << "tensor " << i;
  }
}

}  // namespace
}  // namespace retort

namespace retort {
namespace {

namespace fs = std::filesystem;

// `retort run` with a distill section: a LoRA student (tiny Llama 3) learns from a teacher that is
// the same base with a LoRA merged in (written by `retort export --format hf`); the KD loss falls
// as the student's adapter approaches the teacher's. A teacher with another tokenizer is refused.
TEST(DistillRun, RecipeWithATeacherTrainsTheStudentTowardsIt) {
  test::TempDir dir;
  const std::string base = (test::fixture_dir("export") / "llama3").string();
  const fs::path teacher = dir.path() / "teacher";
  auto exported = test::run_retort({"export", "--model", base, "--adapter", (test::fixture_dir("export") / "llama3-lora").string(),
                                    "--format", "hf", "--out", teacher.string()});
  ASSERT_EQ(exported.exit_code, 0) << exported.err;
  {
    std::ofstream data(dir.path() / "chats.jsonl");
    for (int i = 0; i < 8; ++i) {
      data << nlohmann::json{{"messages", {{{"role", "user"}, {"content", "Tell me about lighthouse " + std::to_string(i)}},
                                           {{"role", "assistant"}, {"content", "It stands on rock number " + std::to_string(i) + "."}}}}}
                  .dump()
           << "\n";
    }
  }
  const std::string recipe = "model:\n  path: " + base + "\ndata:\n  train: " + (dir.path() / "chats.jsonl").string() +
                             "\n  max_seq_len: 96\n  validation_fraction: 0\nlora:\n  rank: 4\n  alpha: 8\n"
                             "  target_modules: [q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj]\n"
                             "optimizer:\n  lr: 2.0e-2\nscheduler:\n  name: constant\ntraining:\n  max_steps: 8\n"
                             "  micro_batch_size: 4\nlogging:\n  tensorboard: false\ndistill:\n  teacher: " +
                             teacher.string() + "\n  alpha: 1.0\n  loss: forward_kl\n";
  write_file_atomic((dir.path() / "recipe.yaml").string(), recipe);
  const fs::path run = dir.path() / "run";
  auto result = test::run_retort({"run", (dir.path() / "recipe.yaml").string(), "checkpoint.output_dir=" + run.string()});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NE(result.err.find("distilling from"), std::string::npos) << result.err;
  std::vector<double> losses;
  std::ifstream metrics(run / "metrics.jsonl");
  for (std::string line; std::getline(metrics, line);) {
    const auto entry = nlohmann::json::parse(line);
    if (!entry.contains("loss")) continue;
    losses.push_back(entry["loss"]);
    // The loss parts are logged: with alpha 1 the loss is the KD part alone.
    ASSERT_TRUE(entry.contains("loss_kd")) << line;
    EXPECT_NEAR(entry["loss_kd"].get<double>(), losses.back(), 1e-6 * std::max(1.0, losses.back()));
    EXPECT_FALSE(entry.contains("loss_ce")) << line;
  }
  ASSERT_EQ(losses.size(), 8u);
  EXPECT_LT(losses.back(), 0.5 * losses.front()) << "KD loss " << losses.front() << " -> " << losses.back();
  // Another tokenizer: refused before training, naming the difference.
  result = test::run_retort({"run", (dir.path() / "recipe.yaml").string(), "checkpoint.output_dir=" + (dir.path() / "r2").string(),
                             "distill.teacher=" + (test::fixture_dir("export") / "qwen2").string()});
  EXPECT_EQ(result.exit_code, 2) << result.err;
  EXPECT_NE(result.err.find("tokenizers differ"), std::string::npos) << result.err;
}

}  // namespace
}  // namespace retort

namespace retort {
namespace {

// Teacher-written data: every prompt answered N times through the chat template, written as a chat
// dataset `retort data inspect` reads as is; a run cut mid-batch (a torn last line) resumes to the
// very same file.
TEST(DistillSyntheticData, AnswersEveryPromptAndResumesToTheSameFile) {
  test::TempDir dir;
  const std::string model = (test::fixture_dir("export") / "llama3").string();
  const fs::path prompts = dir.path() / "prompts.jsonl";
  write_file_atomic(prompts.string(),
                    "{\"prompt\": \"Where is the lighthouse?\"}\n"
                    "{\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"}, {\"role\": \"user\", \"content\": \"Name a tide.\"}]}\n"
                    "{\"prompt\": \"What do keepers eat?\"}\n");
  auto generate = [&](const fs::path& out) {
    return test::run_retort({"generate", "--model", model, "--prompts", prompts.string(), "--out", out.string(),
                             "--samples-per-prompt", "2", "--batch-size", "4", "--temperature", "0.8",
                             "--max-new-tokens", "8", "--seed", "5"});
  };
  const fs::path whole = dir.path() / "whole.jsonl";
  auto result = generate(whole);
  ASSERT_EQ(result.exit_code, 0) << result.err;
  std::vector<nlohmann::json> lines;
  std::ifstream in(whole);
  for (std::string line; std::getline(in, line);) lines.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(lines.size(), 6u);
  EXPECT_EQ(lines[2]["messages"][0]["content"], "Be brief.");
  for (const auto& line : lines) EXPECT_EQ(line["messages"].back()["role"], "assistant");
  EXPECT_NE(lines[0]["messages"][1]["content"], lines[1]["messages"][1]["content"]);  // two samples differ
  // Cut after five lines plus a torn sixth: the second batch is redone with the same seed.
  const std::string text = read_text_file(whole.string());
  size_t cut = 0;
  for (int i = 0; i < 5; ++i) cut = text.find('\n', cut) + 1;
  const fs::path resumed = dir.path() / "resumed.jsonl";
  write_file_atomic(resumed.string(), text.substr(0, cut) + "{\"messages\": [tor");
  result = generate(resumed);
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(read_text_file(resumed.string()), text);
  result = test::run_retort({"data", "inspect", "--model", model, "--data", whole.string()});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NE(result.out.find("6 kept"), std::string::npos) << result.out;
  // A prompt that does not end with a user turn is bad input naming its line.
  write_file_atomic(prompts.string(), "{\"messages\": [{\"role\": \"assistant\", \"content\": \"hi\"}]}\n");
  result = generate(dir.path() / "bad.jsonl");
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_NE(result.err.find(":1:"), std::string::npos) << result.err;
}


// SIGTERM during `generate --prompts`: the batch in progress is dropped, the file keeps whole
// batches, the exit status is 143, and the same command continues to the file of a run never stopped.
TEST(DistillSyntheticData, SigtermKeepsWholeBatchesAndTheRerunCompletesTheSameFile) {
  test::TempDir dir;
  const std::string model = (test::fixture_dir("export") / "llama3").string();
  const fs::path prompts = dir.path() / "prompts.jsonl";
  {
    std::ofstream out(prompts);
    for (int i = 0; i < 40; ++i) out << "{\"prompt\": \"Tell me about lighthouse number " << i << ".\"}\n";
  }
  auto command = [&](const fs::path& out) {
    return std::vector<std::string>{"generate", "--model", model, "--prompts", prompts.string(), "--out", out.string(),
                                    "--batch-size", "2", "--temperature", "0.8", "--max-new-tokens", "16", "--seed", "3"};
  };
  const fs::path whole = dir.path() / "whole.jsonl", stopped = dir.path() / "stopped.jsonl";
  auto result = test::run_retort(command(whole));
  ASSERT_EQ(result.exit_code, 0) << result.err;
  auto line_count = [](const fs::path& file) {
    const std::string text = fs::exists(file) ? read_text_file(file.string()) : std::string();
    return static_cast<size_t>(std::count(text.begin(), text.end(), '\n'));
  };
  ASSERT_EQ(line_count(whole), 40u);
  test::Started run = test::start_retort(command(stopped));
  test::wait_until([&] { return line_count(stopped) >= 2; }, std::chrono::microseconds(200));
  ::kill(run.pid(), SIGSTOP);  // frozen mid-file, then told to stop
  ::kill(run.pid(), SIGTERM);
  ::kill(run.pid(), SIGCONT);
  result = run.finish();
  ASSERT_EQ(result.exit_code, 143) << result.out << result.err;
  EXPECT_NE(result.out.find("run the same command again"), std::string::npos) << result.out;
  const std::string partial = read_text_file(stopped.string());
  const size_t kept = line_count(stopped);
  EXPECT_EQ(kept % 2, 0u) << "whole batches only";
  EXPECT_LT(kept, 40u);
  EXPECT_EQ(read_text_file(whole.string()).substr(0, partial.size()), partial);
  result = test::run_retort(command(stopped));
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(read_text_file(stopped.string()), read_text_file(whole.string()));
}

test::CommandResult python(const std::string& script, const std::vector<std::string>& args) {
  return test::run_reference_script(script, args);
}

// `retort prune` against transformers: a 4-layer teacher with layers 1 and 2 removed (depth), then
// also each MLP cut from 96 to 40 neurons by calibration activations (width), then the 2 layers of
// highest block importance kept (--depth); the checkpoint loads in transformers and gives, as Retort
// does, the logits of the teacher pruned there (layers and neurons chosen there by the same measures).
TEST(DistillPrune, PrunedStudentEqualsTheTeacherWithThoseLayersAndNeuronsRemoved) {
  test::TempDir dir;
  const fs::path teacher = dir.path() / "teacher";
  auto made = python("check_prune.py", {"make", teacher.string(), (test::fixture_dir("export") / "llama3").string()});
  ASSERT_EQ(made.exit_code, 0) << made.out << made.err;
  {
    std::ofstream calibration(dir.path() / "calibration.jsonl");
    calibration << "{\"text\": \"The lighthouse keeper counts the ships at dusk.\"}\n"
                << "{\"ids\": [128000, 791, 4062, 14198, 39935, 35308, 927, 279, 16053, 5679, 13]}\n";
  }
  const std::vector<int64_t> input_ids = {128000, 9906, 1917, 11, 1618, 374, 264, 1296, 315, 86292, 13};
  // The same calibration ids Retort reads: the text line through the teacher's tokenizer (with BOS).
  const auto tokenizer = load_tokenizer(teacher.string());
  std::vector<int64_t> text_ids;
  for (TokenId id : tokenizer->encode("The lighthouse keeper counts the ships at dusk.", true)) text_ids.push_back(id);
  const nlohmann::json calibration = {text_ids, {128000, 791, 4062, 14198, 39935, 35308, 927, 279, 16053, 5679, 13}};
  struct Case {
    std::string name;
    std::vector<std::string> args;  // after --model
    nlohmann::json expected;        // keep / depth / width for the checker
  };
  const std::string calibration_file = (dir.path() / "calibration.jsonl").string();
  for (const Case& c : {Case{"depth", {"--keep-layers", "0,3"}, {{"keep", {0, 3}}, {"width", 0}}},
                        Case{"depth_width", {"--keep-layers", "0,3", "--mlp-width", "40", "--calibration", calibration_file},
                             {{"keep", {0, 3}}, {"width", 40}}},
                        Case{"importance", {"--depth", "2", "--calibration", calibration_file}, {{"depth", 2}, {"width", 0}}}}) {
    const fs::path out = dir.path() / c.name;
    std::vector<std::string> args = {"prune", "--model", teacher.string()};
    args.insert(args.end(), c.args.begin(), c.args.end());
    args.insert(args.end(), {"--out", out.string()});
    auto pruned = test::run_retort(args);
    ASSERT_EQ(pruned.exit_code, 0) << pruned.err;
    std::string ids;
    for (int64_t id : input_ids) ids += (ids.empty() ? "" : ",") + std::to_string(id);
    const std::string logits_file = (dir.path() / (c.name + ".safetensors")).string();
    auto logits = test::run_retort({"logits", "--model", out.string(), "--prompt-ids", ids, "--all-positions", "--out",
                                    logits_file});
    ASSERT_EQ(logits.exit_code, 0) << logits.err;
    nlohmann::json check = c.expected;
    check.update({{"teacher", teacher.string()}, {"pruned", out.string()}, {"input_ids", input_ids},
                  {"retort_logits", logits_file}, {"calibration", calibration}});
    write_file_atomic((dir.path() / "case.json").string(), check.dump());
    auto result = python("check_prune.py", {"check", (dir.path() / "case.json").string()});
    EXPECT_EQ(result.exit_code, 0) << c.name << "\n" << pruned.err << result.out << result.err;
  }
  // Bad layer lists are refused by name.
  auto bad = test::run_retort({"prune", "--model", teacher.string(), "--keep-layers", "0,7", "--out",
                               (dir.path() / "bad").string()});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("layer 7 is outside"), std::string::npos) << bad.err;
}


// recipes/distill_online_smollm2.yaml as shipped, shortened: SmolLM2-135M teaches a 4-layer student
// pruned from it; the run ends with the recipe's GGUF export, which llama.cpp's reader (gguf-py) opens.
TEST(DistillRecipe, OnlineSmolLM2RecipeRunsEndToEnd) {
  test::TempDir dir;
  const std::string smollm2 = nlohmann::json::parse(
      read_text_file((test::fixture_dir("smollm2") / "smollm2.json").string()))["gguf"];
  const fs::path student = dir.path() / "student";
  auto pruned = test::run_retort({"prune", "--model", smollm2, "--keep-layers", "0-1,28-29", "--out", student.string()});
  ASSERT_EQ(pruned.exit_code, 0) << pruned.err;
  const std::string source_dir = test::env_or_empty("RETORT_SOURCE_DIR");
  const fs::path run = dir.path() / "run";
  auto result = test::run_retort({"run", source_dir + "/recipes/distill_online_smollm2.yaml", "model.path=" + student.string(),
                                  "distill.teacher=" + smollm2,
                                  "data.train=" + source_dir + "/examples/creator_persona/train.jsonl",
                                  "data.max_seq_len=256", "training.max_steps=3", "training.eval_every_steps=0",
                                  "checkpoint.output_dir=" + run.string(), "logging.tensorboard=false"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NE(result.err.find("distilling from"), std::string::npos) << result.err;
  const fs::path gguf = run / "export" / "persona-student-q8_0.gguf";
  ASSERT_TRUE(fs::exists(gguf)) << result.err;
  auto read = python("check_gguf_opens.py", {gguf.string(), "4"});
  EXPECT_EQ(read.exit_code, 0) << read.out << read.err;
}

}  // namespace
}  // namespace retort
