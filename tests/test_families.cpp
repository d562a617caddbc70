// Model families own what they know: each architecture has one family with its config.json
// reader/writer, GGUF names and metadata, and default chat template; and the shared decoder
// gives layers their own attention window and RoPE base (local and global layers).
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include "io/error.h"
#include "models/config.h"
#include "models/decoder.h"
#include "models/family.h"
#include "models/registry.h"

#include <map>

namespace retort {
namespace {

TEST(ModelFamilies, EveryArchitectureHasOneFamilyWithItsTables) {
  EXPECT_EQ(supported_architectures(),
            (std::vector<std::string>{"Gemma3ForCausalLM", "LlamaForCausalLM", "MistralForCausalLM",
                                      "Qwen2ForCausalLM", "Qwen3ForCausalLM"}));
  const ModelFamily& llama = family_for_architecture("LlamaForCausalLM", "test");
  const ModelFamily& qwen2 = family_for_gguf("qwen2", "test.gguf");
  EXPECT_EQ(qwen2.hf_architectures.front(), "Qwen2ForCausalLM");
  EXPECT_EQ(qwen2.default_chat_template, "chatml");
  EXPECT_EQ(family_for_gguf("llama", "test.gguf").name, "llama");  // Mistral is stored as llama too
  EXPECT_EQ(llama.gguf_tensor_name("model.layers.3.self_attn.q_proj.weight"), "blk.3.attn_q.weight");
  EXPECT_EQ(qwen2.gguf_tensor_name("model.layers.0.self_attn.k_proj.bias"), "blk.0.attn_k.bias");
  EXPECT_EQ(llama.gguf_tensor_name("lm_head.weight"), "output.weight");
  ModelConfig config;
  config.num_attention_heads = 8;
  config.num_key_value_heads = 2;
  EXPECT_EQ(llama.gguf_permuted_heads(config, "model.layers.0.self_attn.k_proj.weight"), 2);
  EXPECT_FALSE(qwen2.gguf_permuted_heads(config, "model.layers.0.self_attn.k_proj.weight"));  // NEOX rope
  const ModelFamily& qwen3 = family_for_gguf("qwen3", "test.gguf");
  EXPECT_EQ(qwen3.gguf_tensor_name("model.layers.2.self_attn.q_norm.weight"), "blk.2.attn_q_norm.weight");
  EXPECT_EQ(qwen3.gguf_tensor_name("model.layers.2.self_attn.k_norm.weight"), "blk.2.attn_k_norm.weight");
  EXPECT_FALSE(qwen3.gguf_permuted_heads(config, "model.layers.0.self_attn.q_proj.weight"));
  try {
    family_for_gguf("gpt2", "model.gguf");
    FAIL() << "gpt2 has a family";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("'gpt2' is not supported (supported: llama, qwen2, qwen3, gemma3)"), std::string::npos)
        << error.what();
  }
}

TEST(ModelFamilies, ConfigJsonRoundTripsThroughEachFamily) {
  const std::string base = R"("hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
      "num_key_value_heads": 2, "intermediate_size": 128, "vocab_size": 100)";
  const std::vector<std::pair<std::string, std::string>> configs = {
      {"LlamaForCausalLM", R"("attention_bias": true, "mlp_bias": true)"},
      {"MistralForCausalLM", R"("sliding_window": 16)"},
      {"Qwen2ForCausalLM", R"("use_sliding_window": true, "sliding_window": 32)"},
      {"Qwen2ForCausalLM", R"("use_sliding_window": true, "sliding_window": 32, "max_window_layers": 1)"},
      {"Qwen3ForCausalLM", R"("head_dim": 24, "use_sliding_window": true, "sliding_window": 8,
          "layer_types": ["sliding_attention", "full_attention"])"},
      {"Qwen3ForCausalLM", R"("attention_bias": true)"},
  };
  for (const auto& [architecture, extra] : configs) {
    const std::string json = "{\"architectures\": [\"" + architecture + "\"], " + base + ", " + extra + "}";
    const ModelConfig first = parse_hf_config(json, architecture);
    const ModelConfig again = parse_hf_config(hf_config_json(first, "float32"), architecture);
    EXPECT_EQ(again.architecture, architecture);
    EXPECT_EQ(again.sliding_window, first.sliding_window) << architecture;
    EXPECT_EQ(again.attention_bias, first.attention_bias) << architecture;
    EXPECT_EQ(again.o_proj_bias, first.o_proj_bias) << architecture;
    EXPECT_EQ(again.mlp_bias, first.mlp_bias) << architecture;
    EXPECT_EQ(again.qk_norm, first.qk_norm) << architecture;
    EXPECT_EQ(again.head_dim, first.head_dim) << architecture;
    EXPECT_EQ(again.layer_attention, first.layer_attention) << architecture << " " << extra;
    EXPECT_EQ(again.intermediate_size, 128);
  }
  EXPECT_TRUE(parse_hf_config("{\"architectures\": [\"Qwen2ForCausalLM\"], " + base + "}", "q").attention_bias);
  EXPECT_EQ(parse_hf_config("{\"architectures\": [\"MistralForCausalLM\"], " + base + "}", "m").sliding_window,
            std::nullopt);
  // Qwen slides only from max_window_layers (default 28) on, as transformers' Qwen2Config says.
  const auto qwen_layers = [&](const std::string& architecture, const std::string& extra) {
    return parse_hf_config("{\"architectures\": [\"" + architecture + "\"], " + base + ", " + extra + "}", "q")
        .layer_attention;
  };
  EXPECT_TRUE(qwen_layers("Qwen2ForCausalLM", R"("use_sliding_window": true, "sliding_window": 32)").empty());
  const std::vector<LayerAttention> second_slides = {{std::nullopt, std::nullopt}, {32, std::nullopt}};
  EXPECT_EQ(qwen_layers("Qwen3ForCausalLM", R"("use_sliding_window": true, "sliding_window": 32,
                                               "max_window_layers": 1)"),
            second_slides);
  EXPECT_TRUE(qwen_layers("Qwen3ForCausalLM", R"("use_sliding_window": false, "sliding_window": 32,
                                              "max_window_layers": 0)")
                  .empty());
  EXPECT_THROW(qwen_layers("Qwen3ForCausalLM", R"("use_sliding_window": true, "layer_types": ["local", "global"])"),
               Error);
  EXPECT_TRUE(parse_hf_config("{\"architectures\": [\"Qwen3ForCausalLM\"], " + base + "}", "q").qk_norm);
}

// Gemma 3's local and global layers from both config.json forms (transformers v5's per-layer-type
// rope_parameters and the legacy rope_theta / rope_local_base_freq / sliding_window_pattern), and
// back; what Retort does not run yet is refused by key.
TEST(ModelFamilies, Gemma3LayersAndRopeBasesFromEitherConfigForm) {
  const std::string base = R"("architectures": ["Gemma3ForCausalLM"], "hidden_size": 64, "num_hidden_layers": 6,
      "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16, "sliding_window": 8)";
  const ModelConfig v5 = parse_hf_config("{" + base + R"(, "rope_parameters": {
      "full_attention": {"rope_type": "default", "rope_theta": 1000000.0},
      "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0}}})",
                                         "v5.json");
  const ModelConfig legacy = parse_hf_config("{" + base + R"(, "rope_theta": 1000000.0, "rope_local_base_freq": 10000.0})",
                                             "legacy.json");
  const LayerAttention local{8, 10000.0, false}, global{std::nullopt, 1000000.0};  // local: never RoPE-scaled
  const std::vector<LayerAttention> expected = {local, local, local, local, local, global};  // pattern 6
  EXPECT_EQ(v5.layer_attention, expected);
  EXPECT_EQ(legacy.layer_attention, expected);
  EXPECT_TRUE(v5.tie_word_embeddings);
  EXPECT_EQ(v5.query_pre_attn_scalar, 256.0);
  EXPECT_EQ(v5.rope.theta, 1000000.0);
  const ModelConfig again = parse_hf_config(hf_config_json(v5, "float32"), "again.json");
  EXPECT_EQ(again.layer_attention, expected);
  EXPECT_EQ(again.query_pre_attn_scalar, v5.query_pre_attn_scalar);
  EXPECT_EQ(again.tie_word_embeddings, true);
  for (const std::string bad : {R"("final_logit_softcapping": 30.0)", R"("rope_scaling": {"rope_type": "dynamic", "factor": 8.0})",
                                R"("rope_parameters": {"sliding_attention": {"rope_type": "linear", "factor": 8.0}})",
                                R"("hidden_activation": "silu")", R"("use_bidirectional_attention": true)"}) {
    EXPECT_THROW(parse_hf_config("{" + base + ", " + bad + "}", "bad.json"), Error) << bad;
  }
  // Linear RoPE scaling (4B and larger) reaches the global layers only, in either config form.
  const ModelConfig scaled = parse_hf_config("{" + base + R"(, "rope_scaling": {"rope_type": "linear", "factor": 8.0}})",
                                             "scaled.json");
  const ModelConfig scaled_v5 = parse_hf_config("{" + base + R"(, "rope_parameters": {
      "full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1000000.0},
      "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0}}})",
                                                "scaled_v5.json");
  EXPECT_EQ(scaled.layer_attention, expected);
  EXPECT_EQ(scaled_v5.layer_attention, expected);
  for (const ModelConfig& config : {scaled, scaled_v5}) {
    EXPECT_EQ(config.rope.type, RopeScaling::kLinear);
    EXPECT_EQ(config.rope.factor, 8.0);
    const auto tables = rope_frequency_tables(config);
    ASSERT_EQ(tables.size(), 2u);
    EXPECT_TRUE(at::equal(tables[0].inv_freq, rope_inverse_frequencies(v5, 10000.0)));
    EXPECT_TRUE(at::allclose(tables[1].inv_freq, rope_inverse_frequencies(v5, 1000000.0) / 8.0));
  }
  EXPECT_EQ(parse_hf_config(hf_config_json(scaled, "float32"), "again.json").rope.type, RopeScaling::kLinear);
  // GGUF: llama.cpp's gemma3 keys; a pattern other than every sixth layer global is spelled out.
  const auto model = create_model(v5, "test");
  EXPECT_EQ(model->gguf_architecture(), "gemma3");
  EXPECT_EQ(model->gguf_tensor_name("model.layers.1.post_feedforward_layernorm.weight"), "blk.1.post_ffw_norm.weight");
  EXPECT_EQ(model->family().gguf_value_offset("model.layers.1.self_attn.q_norm.weight"), 1.0);
  EXPECT_EQ(model->family().gguf_value_offset("model.layers.1.self_attn.q_proj.weight"), 0.0);
  auto metadata_of = [&](const ModelConfig& config) {
    std::map<std::string, GgufValue> metadata;
    for (auto& [key, value] : gguf_architecture_metadata(model->family(), config)) metadata.emplace(key, value);
    return metadata;
  };
  ModelConfig gguf_ready = v5;
  gguf_ready.query_pre_attn_scalar = 16.0;  // head_dim: what llama.cpp derives below 62 layers
  const auto standard = metadata_of(gguf_ready);
  EXPECT_EQ(std::get<uint32_t>(standard.at("gemma3.attention.sliding_window").data), 8u);
  EXPECT_EQ(std::get<float>(standard.at("gemma3.rope.freq_base_swa").data), 10000.0f);
  EXPECT_EQ(std::get<float>(standard.at("gemma3.rope.freq_base").data), 1000000.0f);
  EXPECT_FALSE(standard.count("gemma3.attention.sliding_window_pattern"));
  ModelConfig second_global = gguf_ready;
  second_global.layer_attention[1] = global;
  const auto spelled_out = metadata_of(second_global);
  const auto& pattern = std::get<GgufArray>(spelled_out.at("gemma3.attention.sliding_window_pattern").data);
  EXPECT_EQ(std::get<std::vector<bool>>(pattern.data), (std::vector<bool>{true, false, true, true, true, false}));
  EXPECT_THROW(metadata_of(v5), Error);  // query_pre_attn_scalar 256 with head_dim 16
}

// A two-layer model on random weights: position 5's output reads tokens back to 5 - 2 * (w - 1)
// when both layers see a window of w = 2, and every token when the second layer is global.
TEST(ModelFamilies, LocalAndGlobalLayersEachSeeTheirOwnWindowAndRopeBase) {
  ModelConfig config;
  config.vocab_size = 50;
  config.hidden_size = 32;
  config.intermediate_size = 64;
  config.num_hidden_layers = 2;
  config.num_attention_heads = 4;
  config.num_key_value_heads = 2;
  config.head_dim = 8;
  const auto last_position_changes = [&](const std::vector<LayerAttention>& layers) {
    ModelConfig per_layer = config;
    per_layer.layer_attention = layers;
    per_layer.validate("test");
    at::manual_seed(7);
    const auto model = create_model(per_layer, "test");
    at::NoGradGuard no_grad;
    for (auto& parameter : model->parameters()) parameter.normal_(0, 0.3);
    const at::Tensor ids = at::randint(50, {1, 6}, at::kLong);
    at::Tensor changed = ids.clone();
    changed[0][0] = (ids[0][0].item<int64_t>() + 1) % 50;
    const at::Tensor a = model->forward_hidden(ids, {}), b = model->forward_hidden(changed, {});
    return !at::equal(a[0][5], b[0][5]);
  };
  const LayerAttention local{2, 10000.0}, global{std::nullopt, 1000000.0};
  EXPECT_FALSE(last_position_changes({local, local}));
  EXPECT_TRUE(last_position_changes({local, global}));
  EXPECT_TRUE(last_position_changes({global, local}));
  // Each RoPE base gets its own frequencies.
  ModelConfig mixed = config;
  mixed.layer_attention = {local, global};
  const auto tables = rope_frequency_tables(mixed);
  ASSERT_EQ(tables.size(), 2u);
  EXPECT_TRUE(at::equal(tables[1].inv_freq, rope_inverse_frequencies(mixed, 1000000.0)));
  EXPECT_FALSE(at::equal(tables[0].inv_freq, tables[1].inv_freq));
  mixed.layer_attention.pop_back();
  EXPECT_THROW(mixed.validate("test"), Error);
}

}  // namespace
}  // namespace retort
