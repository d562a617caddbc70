// PEFT adapters applied through the linear choke point: logits and greedy generation equal
// peft's PeftModel (LoRA; rsLoRA + DoRA), merged weights equal the adapter's outputs, and
// adapters that do not fit are refused clearly.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <filesystem>

#include "io/atomic_file.h"
#include "io/error.h"
#include "io/safetensors.h"
#include "lora/lora.h"
#include "models/generate.h"
#include "models/loader.h"
#include "tests/test_support.h"
#include "tests/test_support_fixtures.h"

namespace retort {
namespace {

namespace fs = std::filesystem;

class PeftParity : public ::testing::TestWithParam<std::pair<std::string, std::string>> {
 protected:
  void SetUp() override {
    const auto dir = test::fixture_dir("lora");
    base_dir_ = (dir / GetParam().first).string();
    adapter_dir_ = (dir / (GetParam().first + "-" + GetParam().second)).string();
    loaded_ = load_model(base_dir_);
    adapter_ = load_peft_adapter(*loaded_.model, adapter_dir_);
    expected_ = SafetensorsFile::open(adapter_dir_ + "/expected.safetensors");
  }
  std::string base_dir_, adapter_dir_;
  LoadedModel loaded_;
  LoadedAdapter adapter_;
  std::shared_ptr<SafetensorsFile> expected_;
};

double relative_error(const at::Tensor& actual, const at::Tensor& reference) {
  return (actual - reference).abs().max().item<double>() / std::max(1.0, reference.abs().max().item<double>());
}

TEST_P(PeftParity, LogitsEqualPeft) {
  at::NoGradGuard no_grad;
  const at::Tensor logits = loaded_.model->forward_logits(expected_->load("input_ids"));
  EXPECT_LE(relative_error(logits, expected_->load("logits")), 1e-4);
  EXPECT_FALSE(adapter_.target_modules.empty());
}

TEST_P(PeftParity, GreedyGenerationEqualsPeft) {
  const at::Tensor prompt = expected_->load("generate_prompt").flatten();
  const at::Tensor reference = expected_->load("generate_ids").flatten();
  SamplingOptions options;
  options.max_new_tokens = reference.numel();
  const auto result = generate(*loaded_.model, {std::vector<int64_t>(prompt.data_ptr<int64_t>(),
                                                                      prompt.data_ptr<int64_t>() + prompt.numel())},
                               options);
  EXPECT_EQ(result.new_tokens[0],
            std::vector<int64_t>(reference.data_ptr<int64_t>(), reference.data_ptr<int64_t>() + reference.numel()));
}

TEST_P(PeftParity, MergedWeightsGiveTheSameLogitsAndUnmergeRestoresTheBase) {
  at::NoGradGuard no_grad;
  const at::Tensor ids = expected_->load("input_ids");
  const at::Tensor with_adapter = loaded_.model->forward_logits(ids);
  std::map<std::string, at::Tensor> base;
  for (auto& [path, projection] : projections_of(*loaded_.model)) base[path] = projection->weight.clone();
  EXPECT_GT(merge_adapters(*loaded_.model), 0);
  EXPECT_EQ(merge_adapters(*loaded_.model), 0);  // already merged
  EXPECT_LE(relative_error(loaded_.model->forward_logits(ids), with_adapter), 1e-5);
  bool any_changed = false;
  for (auto& [path, projection] : projections_of(*loaded_.model)) any_changed |= !at::equal(projection->weight, base[path]);
  EXPECT_TRUE(any_changed);
  EXPECT_GT(unmerge_adapters(*loaded_.model), 0);
  for (auto& [path, projection] : projections_of(*loaded_.model)) {
    EXPECT_LE((projection->weight - base[path]).abs().max().item<double>(), 1e-6 * std::max(1.0, base[path].abs().max().item<double>()))
        << path;
  }
  EXPECT_LE(relative_error(loaded_.model->forward_logits(ids), with_adapter), 1e-5);  // base weights within one rounding
}

INSTANTIATE_TEST_SUITE_P(Peft, PeftParity,
                         ::testing::Values(std::make_pair("llama", "lora"), std::make_pair("llama", "rslora_dora"),
                                           std::make_pair("qwen2", "lora"), std::make_pair("qwen2", "rslora_dora")));

TEST(PeftCli, GenerateWithAdapterEqualsPeft) {
  const auto dir = test::fixture_dir("lora");
  const std::string adapter = (dir / "llama-rslora_dora").string();
  const auto expected = SafetensorsFile::open(adapter + "/expected.safetensors");
  const at::Tensor prompt = expected->load("generate_prompt").flatten();
  std::string ids;
  for (int64_t i = 0; i < prompt.numel(); ++i) ids += (i ? "," : "") + std::to_string(prompt[i].item<int64_t>());
  const auto result = test::run_retort({"generate", "--model", (dir / "llama").string(), "--adapter", adapter,
                                        "--prompt-ids", ids, "--max-new-tokens", "16", "--json"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const auto json = nlohmann::json::parse(result.out);
  const at::Tensor reference = expected->load("generate_ids").flatten();
  ASSERT_EQ(json["ids"].size(), static_cast<size_t>(reference.numel()));
  for (int64_t i = 0; i < reference.numel(); ++i) EXPECT_EQ(json["ids"][i].get<int64_t>(), reference[i].item<int64_t>());
}

TEST(PeftBadInput, MisfitAdaptersAreRefusedNamingFileAndTensor) {
  const auto dir = test::fixture_dir("lora");
  test::TempDir temp;
  const fs::path adapter = temp.path() / "adapter";
  fs::copy(dir / "llama-lora", adapter);
  // An extra full embedding copy: peft's modules_to_save style content we do not apply.
  const auto original = SafetensorsFile::open((adapter / "adapter_model.safetensors").string());
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (const auto& info : original->tensors()) tensors.emplace_back(info.name, original->load(info.name));
  tensors.emplace_back("base_model.model.model.embed_tokens.weight", at::zeros({80, 48}));
  write_safetensors((adapter / "adapter_model.safetensors").string(), tensors);
  auto result = test::run_retort({"generate", "--model", (dir / "llama").string(), "--adapter", adapter.string(),
                                  "--prompt-ids", "1,2"});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_NE(result.err.find("tensor 'base_model.model.model.embed_tokens.weight'"), std::string::npos) << result.err;
  // An adapter of another shape (the Qwen2 adapter has the same names; give it a different rank).
  auto config = nlohmann::json::parse(read_text_file((dir / "llama-lora" / "adapter_config.json").string()));
  config["r"] = 8;
  fs::remove_all(adapter);
  fs::copy(dir / "llama-lora", adapter);
  write_file_atomic((adapter / "adapter_config.json").string(), config.dump());
  result = test::run_retort({"generate", "--model", (dir / "llama").string(), "--adapter", adapter.string(),
                             "--prompt-ids", "1,2"});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_NE(result.err.find("wrong shape"), std::string::npos) << result.err;
  EXPECT_NE(result.err.find("adapter_model.safetensors"), std::string::npos) << result.err;
  result = test::run_retort({"generate", "--model", (dir / "llama").string(), "--adapter", temp.path().string(),
                             "--prompt-ids", "1,2"});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_NE(result.err.find("no adapter_config.json"), std::string::npos) << result.err;
}

}  // namespace
}  // namespace retort
