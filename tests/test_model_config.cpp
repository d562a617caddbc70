// ModelConfig from config.json: both rope forms, defaults per family, and clear errors; plus
// the decoder in bfloat16 against the float32 reference.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include "io/error.h"
#include "io/safetensors.h"
#include "models/config.h"
#include "models/llama.h"
#include "models/loader.h"
#include "tests/test_support_fixtures.h"

namespace retort {
namespace {

const char* kLegacyLlama31 = R"({
  "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 64,
  "num_attention_heads": 4, "num_key_value_heads": 2, "intermediate_size": 128, "num_hidden_layers": 2,
  "vocab_size": 100, "rope_theta": 500000.0, "eos_token_id": [7, 9], "bos_token_id": 1,
  "rope_scaling": {"type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                   "original_max_position_embeddings": 64}})";

const char* kV5Llama31 = R"({
  "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 64,
  "num_attention_heads": 4, "num_key_value_heads": 2, "intermediate_size": 128, "num_hidden_layers": 2,
  "vocab_size": 100, "eos_token_id": 9,
  "rope_parameters": {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
                      "high_freq_factor": 4.0, "original_max_position_embeddings": 64}})";

TEST(ModelConfig, LegacyAndV5RopeFormsAgree) {
  const ModelConfig legacy = parse_hf_config(kLegacyLlama31, "legacy.json");
  const ModelConfig v5 = parse_hf_config(kV5Llama31, "v5.json");
  EXPECT_EQ(legacy.rope.type, RopeScaling::kLlama3);
  EXPECT_EQ(v5.rope.type, RopeScaling::kLlama3);
  EXPECT_DOUBLE_EQ(legacy.rope.theta, 500000.0);
  EXPECT_DOUBLE_EQ(v5.rope.theta, 500000.0);
  EXPECT_TRUE(at::equal(rope_inverse_frequencies(legacy), rope_inverse_frequencies(v5)));
  EXPECT_EQ(legacy.eos_token_ids, (std::vector<int64_t>{7, 9}));
  EXPECT_EQ(legacy.head_dim, 16);
  EXPECT_EQ(legacy.num_key_value_heads, 2);
}

TEST(ModelConfig, Llama3ScalingMatchesTheFormula) {
  // docs/formats.md §2.5: keep when wavelen < orig/high, divide by factor when wavelen > orig/low,
  // otherwise interpolate.
  const ModelConfig config = parse_hf_config(kV5Llama31, "v5.json");
  const at::Tensor scaled = rope_inverse_frequencies(config).to(at::kDouble);
  for (int64_t i = 0; i < config.head_dim / 2; ++i) {
    const double base = std::pow(500000.0, -2.0 * i / config.head_dim);
    const double wavelen = 2 * M_PI / base;
    double expected = base;
    if (wavelen > 64.0) {
      expected = base / 8.0;
    } else if (wavelen >= 16.0) {
      const double s = (64.0 / wavelen - 1.0) / (4.0 - 1.0);
      expected = base * ((1 - s) / 8.0 + s);
    }
    EXPECT_NEAR(scaled[i].item<double>(), expected, 1e-6 * expected) << i;
  }
}

TEST(ModelConfig, FamilyDefaults) {
  const ModelConfig qwen = parse_hf_config(
      R"({"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 64, "num_attention_heads": 4})",
      "qwen.json");
  EXPECT_TRUE(qwen.attention_bias);
  EXPECT_FALSE(qwen.o_proj_bias);
  EXPECT_EQ(qwen.num_key_value_heads, 4);
  EXPECT_FALSE(qwen.sliding_window.has_value());
  const ModelConfig mistral = parse_hf_config(
      R"({"architectures": ["MistralForCausalLM"], "model_type": "mistral", "hidden_size": 64,
          "num_attention_heads": 4, "num_key_value_heads": 1, "sliding_window": 4096, "head_dim": 32})",
      "mistral.json");
  EXPECT_EQ(mistral.sliding_window.value_or(0), 4096);
  EXPECT_EQ(mistral.head_dim, 32);
}

void expect_config_error(const std::string& json, const std::string& fragment) {
  try {
    parse_hf_config(json, "bad/config.json");
    FAIL() << "accepted: " << json;
  } catch (const Error& error) {
    EXPECT_EQ(error.kind(), ErrorKind::kBadInput);
    EXPECT_NE(std::string(error.what()).find("bad/config.json"), std::string::npos) << error.what();
    EXPECT_NE(std::string(error.what()).find(fragment), std::string::npos) << error.what();
  }
}

TEST(ModelConfig, BadConfigsNameFileAndKey) {
  expect_config_error("{not json", "invalid JSON");
  expect_config_error(R"({"hidden_size": "big"})", "key 'hidden_size': expected an integer");
  expect_config_error(R"({"num_attention_heads": 6, "num_key_value_heads": 4})", "not a multiple");
  expect_config_error(R"({"rope_scaling": {"rope_type": "yarn", "factor": 4}})", "rope type 'yarn' is not supported");
  expect_config_error(R"({"architectures": []})", "key 'architectures'");
  expect_config_error(R"({"vocab_size": 0})", "key 'vocab_size': must be positive");
}

TEST(ModelDtypes, Bfloat16AndFloat16TrackFloat32) {
  const std::string dir = (test::fixture_dir("models") / "llama_gqa").string();
  const auto expected = SafetensorsFile::open(dir + "/expected.safetensors");
  const at::Tensor reference = expected->load("logits");
  for (const auto dtype : {at::kBFloat16, at::kHalf}) {
    LoadOptions options;
    options.dtype = dtype;
    const LoadedModel loaded = load_model(dir, options);
    EXPECT_EQ(loaded.model->dtype(), dtype);
    at::NoGradGuard no_grad;
    const at::Tensor logits = loaded.model->forward_logits(expected->load("input_ids")).to(at::kFloat);
    // Reduced precision: agree with float32 on the scale of the logits, and on most argmaxes.
    const double scale = reference.abs().max().item<double>();
    EXPECT_LE((logits - reference).abs().max().item<double>() / scale, dtype == at::kHalf ? 0.02 : 0.08);
    const double agree = (logits.argmax(-1) == reference.argmax(-1)).to(at::kDouble).mean().item<double>();
    EXPECT_GE(agree, 0.9) << c10::toString(dtype);
  }
}

}  // namespace
}  // namespace retort
