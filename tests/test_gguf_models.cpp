// Models loaded from GGUF files that gguf-py wrote from tiny HF models: the logits equal what
// transformers computes from the same stored weights (so F32 is exact to rounding, and the
// quantized types test dequantization, renaming, the Q/K un-permutation and rope_freqs).
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "io/atomic_file.h"
#include "io/error.h"
#include "io/safetensors.h"
#include "models/gguf_model.h"
#include "models/loader.h"
#include "tests/test_support.h"
#include "tests/test_support_fixtures.h"

namespace retort {
namespace {

TEST(GgufModels, LogitsEqualTransformersOnTheStoredWeights) {
  const auto dir = test::fixture_dir("gguf_models");
  const auto manifest = nlohmann::json::parse(read_text_file((dir / "manifest.json").string()));
  ASSERT_GE(manifest.size(), 12u);  // llama, qwen2, qwen3 x F32, F16, Q8_0, Q4_0
  for (const auto& entry : manifest) {
    const std::string file = (dir / entry["file"].get<std::string>()).string();
    const LoadedModel loaded = load_model(file);
    EXPECT_TRUE(loaded.from_gguf);
    const auto expected = SafetensorsFile::open(file.substr(0, file.size() - 5) + ".expected.safetensors");
    at::NoGradGuard no_grad;
    const at::Tensor logits = loaded.model->forward_logits(expected->load("input_ids"));
    const at::Tensor reference = expected->load("logits");
    const double scale = std::max(1.0, reference.abs().max().item<double>());
    EXPECT_LE((logits - reference).abs().max().item<double>() / scale, 1e-4) << file;
  }
}

TEST(GgufModels, ConfigComesFromMetadata) {
  const auto dir = test::fixture_dir("gguf_models");
  const auto llama = GgufFile::open((dir / "llama-q8_0.gguf").string());
  const ModelConfig config = config_from_gguf(*llama);
  EXPECT_EQ(config.architecture, "LlamaForCausalLM");
  EXPECT_EQ(config.hidden_size, 64);
  EXPECT_EQ(config.num_key_value_heads, 2);
  EXPECT_EQ(config.rope.type, RopeScaling::kFrequencyDivisors);
  EXPECT_EQ(config.rope.frequency_divisors.size(), 8u);
  EXPECT_FALSE(config.tie_word_embeddings);
  const ModelConfig qwen = config_from_gguf(*GgufFile::open((dir / "qwen2-f16.gguf").string()));
  EXPECT_EQ(qwen.architecture, "Qwen2ForCausalLM");
  EXPECT_TRUE(qwen.tie_word_embeddings);  // no output.weight
  EXPECT_TRUE(qwen.attention_bias);
  EXPECT_FALSE(qwen.qk_norm);
  const ModelConfig qwen3 = config_from_gguf(*GgufFile::open((dir / "qwen3-q8_0.gguf").string()));
  EXPECT_EQ(qwen3.architecture, "Qwen3ForCausalLM");
  EXPECT_TRUE(qwen3.qk_norm);
  EXPECT_FALSE(qwen3.attention_bias);
  EXPECT_EQ(qwen3.head_dim, 24);  // attention.key_length, not hidden / heads
  EXPECT_FALSE(qwen3.tie_word_embeddings);
}

TEST(GgufModels, UnpermuteInvertsLlamaCppRowOrder) {
  // HF row i of a head goes to GGUF row 2i, HF row hd/2 + i to 2i + 1 (docs/formats.md §2.4).
  const int64_t heads = 2, head_dim = 6;
  const at::Tensor hf = at::arange(heads * head_dim, at::kFloat).unsqueeze(1).repeat({1, 3});
  at::Tensor gguf = at::empty_like(hf);
  for (int64_t h = 0; h < heads; ++h) {
    for (int64_t i = 0; i < head_dim / 2; ++i) {
      gguf[h * head_dim + 2 * i] = hf[h * head_dim + i];
      gguf[h * head_dim + 2 * i + 1] = hf[h * head_dim + head_dim / 2 + i];
    }
  }
  EXPECT_TRUE(at::equal(unpermute_gguf_qk(gguf, heads), hf));
}

TEST(GgufModels, BadFilesExitTwoNamingFileAndTensor) {
  const auto dir = test::fixture_dir("gguf_models");
  test::TempDir temp;
  const std::string truncated = (temp.path() / "truncated.gguf").string();
  std::filesystem::copy_file(dir / "llama-q8_0.gguf", truncated);
  std::filesystem::resize_file(truncated, std::filesystem::file_size(truncated) - 100);
  auto result = test::run_retort({"generate", "--model", truncated, "--prompt-ids", "1,2"});
  EXPECT_EQ(result.exit_code, 2) << result.err;
  EXPECT_NE(result.err.find(truncated), std::string::npos) << result.err;
  const std::string garbage = (temp.path() / "garbage.gguf").string();
  write_file_atomic(garbage, "GGUF-not-really-a-gguf-file-at-all");
  result = test::run_retort({"generate", "--model", garbage, "--prompt-ids", "1,2"});
  EXPECT_EQ(result.exit_code, 2) << result.err;
  EXPECT_NE(result.err.find(garbage), std::string::npos) << result.err;
}

}  // namespace
}  // namespace retort
