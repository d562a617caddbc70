// `retort run --plan` (run/memory_plan.h) against what loading and training really hold: storage
// bytes of models loaded with each model.quantize, the trainable parameters attach_lora creates,
// the bytes glibc's allocator holds between a forward and a backward pass, the knobs it names for
// a GPU that is too small, and the CLI. Tiny models are written by the tests themselves.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <malloc.h>

#include <filesystem>
#include <fstream>

#include "export/gguf_writer.h"
#include "export/quantize.h"
#include "finetune/sft_step.h"
#include "io/atomic_file.h"
#include "io/error.h"
#include "io/safetensors.h"
#include "lora/lora.h"
#include "models/family.h"
#include "models/loader.h"
#include "models/quantized_storage.h"
#include "models/registry.h"
#include "run/memory_plan.h"
#include "tests/test_support.h"

namespace retort {
namespace {

namespace fs = std::filesystem;

ModelConfig tiny_config(const std::string& architecture, int64_t hidden = 64, int64_t inner = 128) {
  std::string json = R"({"architectures": [")" + architecture + R"("], "vocab_size": 96, "hidden_size": )" +
                     std::to_string(hidden) + R"(, "intermediate_size": )" + std::to_string(inner) +
                     R"(, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
                     "max_position_embeddings": 256, "rms_norm_eps": 1e-6)";
  if (architecture == "Qwen2ForCausalLM") json += R"(, "tie_word_embeddings": true)";
  if (architecture == "Gemma3ForCausalLM") json += R"(, "head_dim": 16, "model_type": "gemma3_text")";
  return parse_hf_config(json + "}", architecture);
}

// Every parameter of `config`'s model, random, by HF name.
std::vector<std::pair<std::string, at::Tensor>> random_weights(const ModelConfig& config) {
  at::manual_seed(5);
  std::vector<std::pair<std::string, at::Tensor>> weights;
  for (const auto& item : create_model(config, "test")->named_parameters()) {
    weights.emplace_back(item.key(), at::randn(item.value().sizes()) * 0.05);
  }
  return weights;
}

fs::path write_hf_model(const fs::path& dir, const ModelConfig& config) {
  fs::create_directories(dir);
  write_file_atomic((dir / "config.json").string(), hf_config_json(config, "float32"));
  write_safetensors((dir / "model.safetensors").string(), random_weights(config));
  return dir;
}

// A GGUF file whose decoder projections are stored in `type_of(projection)`, the rest F32.
fs::path write_gguf_model(const fs::path& path, const ModelConfig& config,
                          const std::function<GgmlType(const std::string&)>& type_of) {
  const ModelFamily& family = family_for_architecture(config.architecture, "test");
  GgufWriter writer(path.string());
  writer.set_string("general.architecture", family.gguf_architecture);
  for (const auto& [key, value] : gguf_architecture_metadata(family, config)) writer.set(key, value);
  const auto weights = random_weights(config);
  std::vector<std::pair<GgmlType, std::vector<uint8_t>>> data;
  for (const auto& [name, tensor] : weights) {
    const bool projection = name.find("_proj.weight") != std::string::npos;
    const GgmlType type = projection ? type_of(name) : GgmlType::F32;
    std::vector<int64_t> ne(tensor.sizes().rbegin(), tensor.sizes().rend());
    writer.add_tensor(family.gguf_tensor_name(name), ne, type);
    const at::Tensor values = tensor.contiguous();
    std::vector<uint8_t> bytes(ggml_row_bytes(type, ne[0]) * static_cast<uint64_t>(values.numel() / ne[0]));
    quantize_from_float(type, values.data_ptr<float>(), values.numel(), bytes.data());
    data.emplace_back(type, std::move(bytes));
  }
  for (size_t i = 0; i < weights.size(); ++i) {
    writer.write_tensor_data(family.gguf_tensor_name(weights[i].first), data[i].second.data(), data[i].second.size());
  }
  writer.commit();
  return path;
}

Recipe recipe_for(const std::string& quantize, const std::string& precision) {
  Recipe recipe;
  recipe.model.quantize = quantize;
  recipe.training.precision = precision;
  recipe.data.max_seq_len = 64;
  return recipe;
}

int64_t part_bytes(const run::MemoryPlan& plan, const std::string& name) {
  for (const run::MemoryPart& part : plan.parts) {
    if (part.name == name) return part.bytes;
  }
  ADD_FAILURE() << "no part '" << name << "'";
  return -1;
}

// What a loaded model holds: its decoder projections' storages, and every other parameter.
std::pair<int64_t, int64_t> loaded_bytes(CausalLM& model) {
  const std::map<std::string, Projection*> projections = decoder_projection_weights(model);
  int64_t quantized = 0, dense = 0;
  for (const auto& [name, projection] : projections) quantized += projection->storage().bytes();
  for (const auto& item : model.named_parameters()) {
    if (!projections.count(item.key())) dense += static_cast<int64_t>(item.value().nbytes());
  }
  return {quantized, dense};
}

TEST(MemoryPlan, BaseWeightsEqualTheStoragesOfTheLoadedModel) {
  test::TempDir temp;
  for (const std::string architecture : {"LlamaForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM", "Gemma3ForCausalLM"}) {
    const ModelConfig config = tiny_config(architecture);
    const fs::path dir = write_hf_model(temp.path() / architecture, config);
    const run::ModelFacts facts = run::read_model_facts(dir.string());
    EXPECT_EQ(facts.config.summary(), config.summary());
    for (const std::string quantize : {"none", "int8", "nf4"}) {
      for (const std::string precision : {"float32", "bfloat16"}) {
        LoadOptions options;
        options.dtype = parse_dtype(precision);
        options.quantize = parse_base_quantization(quantize, "model.quantize");
        const LoadedModel loaded = load_model(dir.string(), options);
        const auto [projections, dense] = loaded_bytes(*loaded.model);
        const run::MemoryPlan plan = run::plan_memory(recipe_for(quantize, precision), facts);
        const std::string where = architecture + " " + quantize + " " + precision;
        EXPECT_EQ(part_bytes(plan, "base weights: decoder projections"), projections) << where;
        EXPECT_EQ(part_bytes(plan, "base weights: embeddings, norms, head"), dense) << where;
      }
    }
  }
  // One projection whose block maxima fill one and a bit scale blocks (320 blocks of 64).
  Projection projection(320, 64, false);
  {
    at::NoGradGuard no_grad;
    projection.weight.normal_();
  }
  quantize_projection_nf4(projection, at::kFloat, at::kCPU);
  EXPECT_EQ(run::nf4_storage_bytes(320 * 64), projection.storage().bytes());
  const run::ModelFacts llama = run::read_model_facts((temp.path() / "LlamaForCausalLM").string());
  EXPECT_THROW(run::plan_memory(recipe_for("keep", "float32"), llama), Error);  // not a GGUF file
}

TEST(MemoryPlan, KeepCountsTheGgufBlocksAsStored) {
  test::TempDir temp;
  const ModelConfig config = tiny_config("LlamaForCausalLM", 256, 512);  // K-quant rows: 256 wide
  const std::map<std::string, GgmlType> types = {
      {"q_proj", GgmlType::Q8_0}, {"k_proj", GgmlType::Q4_0}, {"v_proj", GgmlType::Q5_1}, {"o_proj", GgmlType::F16},
      {"gate_proj", GgmlType::Q4_K}, {"up_proj", GgmlType::Q6_K}, {"down_proj", GgmlType::Q5_K}};
  const fs::path path = write_gguf_model(temp.path() / "mixed.gguf", config, [&](const std::string& name) {
    for (const auto& [projection, type] : types) {
      if (name.find(projection) != std::string::npos) return type;
    }
    return GgmlType::F32;
  });
  const run::ModelFacts facts = run::read_model_facts(path.string());
  ASSERT_TRUE(facts.from_gguf);
  EXPECT_EQ(facts.stored.size(), 14u);
  for (const std::string quantize : {"keep", "nf4", "none"}) {
    for (const std::string precision : {"float32", "bfloat16"}) {
      LoadOptions options;
      options.dtype = parse_dtype(precision);
      options.quantize = parse_base_quantization(quantize, "model.quantize");
      const LoadedModel loaded = load_model(path.string(), options);
      const auto [projections, dense] = loaded_bytes(*loaded.model);
      const run::MemoryPlan plan = run::plan_memory(recipe_for(quantize, precision), facts);
      EXPECT_EQ(part_bytes(plan, "base weights: decoder projections"), projections) << quantize << " " << precision;
      EXPECT_EQ(part_bytes(plan, "base weights: embeddings, norms, head"), dense) << quantize << " " << precision;
    }
  }
}

TEST(MemoryPlan, AdaptersAndOptimizerStateCountWhatLoraTrains) {
  const ModelConfig config = tiny_config("Qwen2ForCausalLM");
  run::ModelFacts facts;
  facts.config = config;
  for (const bool dora : {false, true}) {
    for (const std::vector<std::string> targets :
         {std::vector<std::string>{"q_proj", "v_proj"}, LoraSection().target_modules}) {
      Recipe recipe = recipe_for("none", "float32");
      recipe.lora.rank = 8;
      recipe.lora.use_dora = dora;
      recipe.lora.target_modules = targets;
      auto model = create_model(config, "test");
      LoraSpec spec;
      spec.rank = 8;
      spec.use_dora = dora;
      attach_lora(*model, spec, targets, 1);
      int64_t trainable = 0;
      for (const auto& [name, tensor] : prepare_trainable_parameters(*model)) trainable += tensor.numel();
      const run::MemoryPlan plan = run::plan_memory(recipe, facts);
      EXPECT_EQ(part_bytes(plan, "LoRA adapters"), trainable * 4) << dora << " " << targets.size();
      EXPECT_EQ(part_bytes(plan, "adapter gradients"), trainable * 4);
      EXPECT_EQ(part_bytes(plan, "optimizer state"), trainable * 8);  // AdamW's two moments
    }
  }
}

// The bytes in use by glibc's allocator (every arena and every mmapped block).
int64_t allocated_bytes() {
  const struct mallinfo2 info = ::mallinfo2();
  return static_cast<int64_t>(info.uordblks + info.hblkhd);
}

// What a training micro-batch keeps from its forward pass for the backward pass: measured as the
// allocator's bytes after the loss minus before the forward, on a model held as the recipe says.
int64_t measured_saved_bytes(const Recipe& recipe, const ModelConfig& config) {
  at::manual_seed(11);
  auto model = create_model(config, "test");
  const at::ScalarType dtype = parse_dtype(recipe.training.precision);
  {
    at::NoGradGuard no_grad;
    for (auto& item : model->named_parameters()) item.value().set_data(at::randn(item.value().sizes()).mul_(0.05).to(dtype));
    for (const auto& [name, projection] : decoder_projection_weights(*model)) {
      if (recipe.model.quantize == "int8") projection->quantize_int8(dtype, at::kCPU);
      if (recipe.model.quantize == "nf4") quantize_projection_nf4(*projection, dtype, at::kCPU);
    }
  }
  LoraSpec spec;
  spec.rank = recipe.lora.rank;
  spec.dropout = recipe.lora.dropout;
  attach_lora(*model, spec, recipe.lora.target_modules, 3);
  model->set_activation_checkpointing(recipe.training.activation_checkpointing);
  SftStep step(*model);
  step.set_training(true);
  Batch batch;
  batch.input_ids = at::randint(config.vocab_size, {recipe.training.micro_batch_size, recipe.data.max_seq_len}, at::kLong);
  batch.labels = batch.input_ids.clone();
  step.forward(batch).loss_sum.backward();  // warm-up: thread-local scratch and caches exist from here on
  for (const at::Tensor& parameter : step.trainable_parameters()) parameter.mutable_grad() = at::Tensor();
  const int64_t before = allocated_bytes();
  StepResult result = step.forward(batch);
  const int64_t after = allocated_bytes();
  result.loss_sum.backward();
  return after - before;
}

// The per-layer accounting of run/memory_plan.cpp (what autograd keeps: norms' inputs, attention's
// rotated q/k, v and output, the MLP's gate/up/act, each adapter's dropped-out input,
// checkpointed layers' inputs; nothing of a quantized weight) against the allocator itself.
TEST(MemoryPlan, SavedActivationsEqualWhatTheAllocatorHoldsAfterTheForwardPass) {
  const ModelConfig config = tiny_config("LlamaForCausalLM", 256, 512);
  run::ModelFacts facts;
  facts.config = config;
  struct Case {
    std::string quantize, precision;
    bool checkpointing;
    double dropout;
  };
  for (const Case& c : {Case{"none", "float32", false, 0.05}, Case{"none", "float32", false, 0.0},
                        Case{"int8", "float32", false, 0.05}, Case{"nf4", "float32", false, 0.05},
                        Case{"none", "bfloat16", false, 0.05}, Case{"nf4", "float32", true, 0.05}}) {
    Recipe recipe = recipe_for(c.quantize, c.precision);
    recipe.training.micro_batch_size = 1;  // one row: no padding mask
    recipe.data.max_seq_len = 256;
    recipe.training.activation_checkpointing = c.checkpointing;
    recipe.lora.dropout = c.dropout;
    const int64_t planned = run::saved_activation_bytes(recipe, facts);
    const int64_t measured = measured_saved_bytes(recipe, config);
    const std::string where = c.quantize + " " + c.precision + (c.checkpointing ? " checkpointed" : "") +
                              " dropout " + std::to_string(c.dropout);
    EXPECT_NEAR(static_cast<double>(planned), static_cast<double>(measured), 0.05 * static_cast<double>(measured))
        << where << ": planned " << planned << ", measured " << measured;
  }
}

Recipe gpu_recipe() {
  Recipe recipe;
  recipe.model.device = "cuda:0";
  recipe.training.precision = "bfloat16";
  recipe.training.micro_batch_size = 4;
  recipe.training.gradient_accumulation = 2;
  recipe.data.max_seq_len = 2048;
  return recipe;
}

run::ModelFacts llama_3b_facts() {
  run::ModelFacts facts;
  facts.config = parse_hf_config(R"({"architectures": ["LlamaForCausalLM"], "vocab_size": 128256,
      "hidden_size": 3072, "intermediate_size": 8192, "num_hidden_layers": 28, "num_attention_heads": 24,
      "num_key_value_heads": 8, "head_dim": 128, "tie_word_embeddings": true, "rms_norm_eps": 1e-5})",
                                 "llama-3.2-3b");
  return facts;
}

int64_t planned_total(Recipe recipe, const std::function<void(Recipe&)>& change) {
  change(recipe);
  return run::plan_memory(recipe, llama_3b_facts()).total_bytes();
}

std::string refusal(const Recipe& recipe, int64_t free_bytes, std::string* key) {
  const run::ModelFacts facts = llama_3b_facts();
  try {
    run::require_plan_fits(recipe, facts, run::plan_memory(recipe, facts), free_bytes);
  } catch (const Error& error) {
    EXPECT_EQ(error.kind(), ErrorKind::kBadInput);
    *key = error.context().key;
    return error.message();
  }
  return "";
}

TEST(MemoryPlan, AGpuTooSmallIsRefusedNamingTheKnobsThatFit) {
  const Recipe recipe = gpu_recipe();
  const run::ModelFacts facts = llama_3b_facts();
  const int64_t needed = run::plan_memory(recipe, facts).total_bytes();
  const int64_t with_nf4 = planned_total(recipe, [](Recipe& r) { r.model.quantize = "nf4"; });
  const int64_t with_checkpointing = planned_total(recipe, [](Recipe& r) { r.training.activation_checkpointing = true; });
  const int64_t with_batch_2 = planned_total(recipe, [](Recipe& r) { r.training.micro_batch_size = 2; });
  const int64_t with_batch_1 = planned_total(recipe, [](Recipe& r) { r.training.micro_batch_size = 1; });
  ASSERT_LT(with_checkpointing, needed);
  ASSERT_LT(with_batch_2, needed);
  ASSERT_LT(with_batch_1, with_batch_2);
  ASSERT_LT(with_nf4, needed);
  std::string key;
  EXPECT_EQ(refusal(recipe, needed, &key), "");  // exactly enough
  // Room for the smallest of the single changes only: that one is named, and the key points at it.
  const int64_t smallest = std::min({with_nf4, with_checkpointing, with_batch_1});
  const std::string message = refusal(recipe, smallest, &key);
  ASSERT_FALSE(message.empty());
  EXPECT_NE(message.find("is free; it would fit with"), std::string::npos) << message;
  const std::vector<std::string> knobs = run::knobs_that_fit(recipe, facts, smallest);
  ASSERT_EQ(knobs.size(), 1u) << message;
  EXPECT_NE(message.find(knobs.front()), std::string::npos);
  EXPECT_EQ(key, knobs.front().substr(0, knobs.front().find(':')));
  // With room for each single change, each is named; the batch is the largest that fits.
  const int64_t with_batch_3 = planned_total(recipe, [](Recipe& r) { r.training.micro_batch_size = 3; });
  const int64_t roomy = std::max({with_nf4, with_checkpointing, with_batch_2});
  const std::string batch = with_batch_3 <= roomy ? "training.micro_batch_size: 3 (with training.gradient_accumulation: 3"
                                                  : "training.micro_batch_size: 2 (with training.gradient_accumulation: 4";
  const std::vector<std::string> named = run::knobs_that_fit(recipe, facts, roomy);
  ASSERT_EQ(named.size(), 3u);
  EXPECT_EQ(named[0], "model.quantize: nf4");
  EXPECT_EQ(named[1], "training.activation_checkpointing: true");
  EXPECT_EQ(named[2], batch + " for the same batch)");
  // Too small for any single change: all of them together, when that fits.
  Recipe all = recipe;
  all.model.quantize = "nf4";
  all.training.activation_checkpointing = true;
  all.training.micro_batch_size = 1;
  const int64_t together = run::plan_memory(all, facts).total_bytes();
  ASSERT_LT(together, smallest);
  const std::vector<std::string> combined = run::knobs_that_fit(recipe, facts, together);
  ASSERT_EQ(combined.size(), 1u);
  EXPECT_EQ(combined.front(), "model.quantize: nf4, training.activation_checkpointing: true and "
                              "training.micro_batch_size: 1 (with training.gradient_accumulation: 8 for the same "
                              "batch) (together)");
  // Nothing fits: the device is named and the way out is said.
  const std::string hopeless = refusal(recipe, together - 1, &key);
  EXPECT_EQ(key, "model.device");
  EXPECT_NE(hopeless.find("shorten data.max_seq_len"), std::string::npos) << hopeless;
}

TEST(MemoryPlan, RunWithPlanPrintsTheSplitAndCreatesNothing) {
  test::TempDir temp;
  const fs::path model = write_hf_model(temp.path() / "model", tiny_config("LlamaForCausalLM"));
  std::ofstream(temp.path() / "train.jsonl") << R"({"text": "hello"})" << "\n";
  const fs::path out = temp.path() / "out";
  const fs::path recipe = temp.path() / "recipe.yaml";
  std::ofstream(recipe) << "model:\n  path: " << model.string() << "\ndata:\n  train: " << (temp.path() / "train.jsonl").string()
                        << "\n  format: text\n  max_seq_len: 128\ncheckpoint:\n  output_dir: " << out.string() << "\n";
  const test::CommandResult plan = test::run_retort({"run", recipe.string(), "--plan"});
  EXPECT_EQ(plan.exit_code, 0) << plan.err;
  for (const std::string part : {"base weights: decoder projections", "base weights: embeddings, norms, head",
                                 "LoRA adapters", "optimizer state", "activations", "logits chunk", "runtime",
                                 "total at the training step's peak"}) {
    EXPECT_NE(plan.out.find(part), std::string::npos) << part << " in\n" << plan.out;
  }
  EXPECT_FALSE(fs::exists(out));
  // A CUDA recipe: compared with the GPU's free memory where there is one, said so where not.
  const test::CommandResult gpu = test::run_retort({"run", recipe.string(), "model.device=cuda", "--plan"});
  EXPECT_EQ(gpu.exit_code, 0) << gpu.err;
  EXPECT_TRUE(gpu.out.find("no usable GPU here") != std::string::npos || gpu.out.find("fits") != std::string::npos)
      << gpu.out;
  EXPECT_FALSE(fs::exists(out));
  // keep on a safetensors model: refused before anything loads, naming the key.
  const test::CommandResult keep = test::run_retort({"run", recipe.string(), "model.quantize=keep", "--plan"});
  EXPECT_EQ(keep.exit_code, 2);
  EXPECT_NE(keep.err.find("model.quantize"), std::string::npos) << keep.err;
}

}  // namespace
}  // namespace retort
