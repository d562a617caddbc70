// The model commands end to end through the `retort` binary, against transformers' values.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "io/atomic_file.h"
#include "io/safetensors.h"
#include "tests/test_support.h"
#include "tests/test_support_fixtures.h"

namespace retort {
namespace {

std::string ids_arg(const at::Tensor& ids) {
  std::string out;
  const at::Tensor flat = ids.flatten().to(at::kLong);
  for (int64_t i = 0; i < flat.numel(); ++i) out += (i ? "," : "") + std::to_string(flat[i].item<int64_t>());
  return out;
}

TEST(ModelCli, LogitsCommandWritesTransformersLogits) {
  const std::string model = (test::fixture_dir("models") / "qwen2_tied").string();
  const auto expected = SafetensorsFile::open(model + "/expected.safetensors");
  test::TempDir temp;
  const std::string out = (temp.path() / "logits.safetensors").string();
  const at::Tensor ids = expected->load("input_ids")[0];
  const auto result =
      test::run_retort({"logits", "--model", model, "--prompt-ids", ids_arg(ids), "--out", out, "--all-positions"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const at::Tensor logits = SafetensorsFile::open(out)->load("logits");
  EXPECT_EQ(logits.scalar_type(), at::kFloat);
  EXPECT_LE((logits - expected->load("logits")[0]).abs().max().item<double>(), 1e-4);
  // Default: the last position only.
  ASSERT_EQ(test::run_retort({"logits", "--model", model, "--prompt-ids", ids_arg(ids), "--out", out}).exit_code, 0);
  const at::Tensor last = SafetensorsFile::open(out)->load("logits");
  EXPECT_EQ(last.sizes(), (std::vector<int64_t>{1, 96}));
}

TEST(ModelCli, GenerateJsonMatchesTransformersGreedy) {
  const std::string model = (test::fixture_dir("models") / "llama_gqa").string();
  const auto expected = SafetensorsFile::open(model + "/expected.safetensors");
  const auto result = test::run_retort({"generate", "--model", model, "--prompt-ids",
                                        ids_arg(expected->load("generate_prompt")), "--max-new-tokens", "32", "--json"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const auto json = nlohmann::json::parse(result.out);
  const at::Tensor reference = expected->load("generate_ids").flatten();
  ASSERT_EQ(json["ids"].size(), static_cast<size_t>(reference.numel()));
  for (int64_t i = 0; i < reference.numel(); ++i) EXPECT_EQ(json["ids"][i].get<int64_t>(), reference[i].item<int64_t>());
}

TEST(ModelCli, SamplingIsReproducibleBySeed) {
  const std::string model = (test::fixture_dir("models") / "llama_gqa").string();
  auto sample = [&](const std::string& seed) {
    return test::run_retort({"generate", "--model", model, "--prompt-ids", "5,6,7", "--max-new-tokens", "12",
                             "--temperature", "1.5", "--top-k", "40", "--top-p", "0.95", "--seed", seed, "--ignore-eos"});
  };
  const auto a = sample("1"), b = sample("1"), c = sample("2");
  ASSERT_EQ(a.exit_code, 0) << a.err;
  EXPECT_EQ(a.out, b.out);
  EXPECT_NE(a.out, c.out);
}

TEST(ModelCli, EvalLossEqualsTransformers) {
  for (const char* name : {"llama_gqa", "mistral_window"}) {
    const std::string model = (test::fixture_dir("models") / name).string();
    const auto expected = nlohmann::json::parse(read_text_file(model + "/eval_expected.json"));
    const auto result = test::run_retort({"eval", "--model", model, "--data", model + "/eval.jsonl", "--json",
                                          "--batch-size", "3"});
    ASSERT_EQ(result.exit_code, 0) << result.err;
    const auto json = nlohmann::json::parse(result.out);
    EXPECT_EQ(json["tokens"].get<int64_t>(), expected["tokens"].get<int64_t>());
    EXPECT_NEAR(json["loss"].get<double>(), expected["loss"].get<double>(), 1e-5 * expected["loss"].get<double>())
        << name;
    EXPECT_NEAR(json["perplexity"].get<double>(), std::exp(expected["loss"].get<double>()),
                1e-4 * json["perplexity"].get<double>());
  }
}

TEST(ModelCli, BadInputExitsTwoWithOneClearMessage) {
  const std::string model = (test::fixture_dir("models") / "llama_gqa").string();
  test::TempDir temp;
  const std::string bad_data = (temp.path() / "bad.jsonl").string();
  write_file_atomic(bad_data, "{\"ids\": [1, 2, 3]}\n{\"ids\": [1, 2,\n");
  struct Case {
    std::vector<std::string> args;
    std::string fragment;
  };
  const std::vector<Case> cases = {
      {{"generate", "--model", "/no/such/model", "--prompt-ids", "1"}, "/no/such/model: no such file"},
      {{"generate", "--model", model, "--prompt-ids", "1,x"}, "expected comma-separated token ids"},
      {{"generate", "--model", model, "--prompt-ids", "1,999"}, "outside the vocabulary"},
      {{"generate", "--model", model, "--prompt-ids", "1", "--dtype", "float8"}, "unknown dtype 'float8'"},
      {{"generate", "--model", model, "--prompt-ids", "1", "--device", "cuda:7"}, "device 'cuda:7'"},
      {{"eval", "--model", model, "--data", bad_data}, bad_data + ":2: invalid JSON"},
      {{"logits", "--model", model, "--prompt-ids", "1"}, "--out are required"},
  };
  for (const Case& c : cases) {
    const auto result = test::run_retort(c.args);
    EXPECT_EQ(result.exit_code, 2) << c.fragment << "\n" << result.err;
    EXPECT_NE(result.err.find(c.fragment), std::string::npos) << result.err;
    EXPECT_EQ(std::count(result.err.begin(), result.err.end(), '\n'), 1) << "one line: " << result.err;
  }
}

TEST(ModelCli, UnsupportedArchitectureListsTheSupportedOnes) {
  test::TempDir temp;
  write_file_atomic((temp.path() / "config.json").string(),
                    R"({"architectures": ["GPT2LMHeadModel"], "hidden_size": 8, "num_attention_heads": 2})");
  const auto result = test::run_retort({"generate", "--model", temp.path().string(), "--prompt-ids", "1"});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_NE(result.err.find("architecture 'GPT2LMHeadModel' is not supported (supported: Gemma3ForCausalLM, "
                            "LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM)"),
            std::string::npos)
      << result.err;
}

}  // namespace
}  // namespace retort
