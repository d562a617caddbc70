// ModelConfig: the architecture hyper-parameters of a Llama-family decoder, read from an
// HF config.json (+ generation_config.json) or from GGUF metadata (models/gguf_model.cpp).
// Reference: transformers configuration_llama.py / configuration_qwen2.py, modeling_rope_utils.py.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace retort {

// How RoPE frequencies are scaled: none, linearly, Llama 3's piecewise rule, or per-frequency
// divisors read from a GGUF rope_freqs tensor.
enum class RopeScaling { kDefault, kLinear, kLlama3, kFrequencyDivisors };
// "default" | "linear" | "llama3" | "gguf_freq_factors": config.json's rope_type (the last has none).
std::string rope_scaling_name(RopeScaling scaling);

struct RopeConfig {
  RopeScaling type = RopeScaling::kDefault;
  double theta = 10000.0;
  double factor = 1.0;
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int64_t original_max_position_embeddings = 8192;
  // GGUF's rope_freqs.weight: per-frequency divisors [hd/2] (Llama 3.1 scaling baked in).
  // When set, inv_freq = default inv_freq / divisors and `type` is kFrequencyDivisors.
  std::vector<float> frequency_divisors;
};

// One decoder layer's attention: how far back it sees and its RoPE base.
struct LayerAttention {
  std::optional<int64_t> sliding_window;  // none: the whole context
  std::optional<double> rope_theta;       // none: the model's rope.theta (always set by attention_of)
  bool scaled_rope = true;                // the model's rope scaling applies (not on Gemma 3's local layers)
  bool operator==(const LayerAttention&) const = default;
};

struct ModelConfig {
  std::string architecture = "LlamaForCausalLM";  // HF `architectures[0]`
  std::string model_type = "llama";
  int64_t vocab_size = 32000;
  int64_t hidden_size = 4096;
  int64_t intermediate_size = 11008;
  int64_t num_hidden_layers = 32;
  int64_t num_attention_heads = 32;
  int64_t num_key_value_heads = 32;
  int64_t head_dim = 128;
  int64_t max_position_embeddings = 2048;
  double rms_norm_eps = 1e-6;
  RopeConfig rope;
  bool tie_word_embeddings = false;
  bool attention_bias = false;  // bias on q, k, v (Qwen2: true)
  bool o_proj_bias = false;     // Llama's attention_bias also covers o_proj
  bool mlp_bias = false;
  bool qk_norm = false;  // RMSNorm over each head's queries and keys before RoPE (Qwen3)
  // Attention scores scale by query_pre_attn_scalar^-1/2 instead of head_dim^-1/2 (Gemma 3).
  std::optional<double> query_pre_attn_scalar;
  std::optional<int64_t> sliding_window;  // applied only when set (Mistral; Qwen2 with use_sliding_window)
  std::optional<int64_t> bos_token_id;
  std::vector<int64_t> eos_token_ids;  // config.json and generation_config.json, deduplicated
  std::optional<int64_t> pad_token_id;
  std::string torch_dtype;             // informative: the checkpoint's dtype
  // Per decoder layer when layers differ (local sliding-window layers between global ones, each
  // with its own RoPE base); empty: every layer has sliding_window and rope.theta.
  std::vector<LayerAttention> layer_attention;

  // Layer `layer`'s window and RoPE base, the model-wide ones filled in where it has none of its own.
  LayerAttention attention_of(int64_t layer) const;

  // Checks the numbers fit together (heads divide, positive sizes); bad_input naming `source`.
  void validate(const std::string& source) const;
  std::string summary() const;  // one line for logs
};

// config.json text for `config` (transformers' field names, legacy rope keys, which v4 and v5
// both read), with `dtype_name` ("float32", "bfloat16", ...) as torch_dtype/dtype. bad_input when
// the config cannot be said in HF terms (GGUF rope frequency divisors without their parameters).
std::string hf_config_json(const ModelConfig& config, const std::string& dtype_name);
// generation_config.json text: BOS, PAD and every EOS id (end-of-turn tokens included).
std::string hf_generation_config_json(const ModelConfig& config, const std::vector<int64_t>& eos_token_ids);

// Reads DIR/config.json and, when present, DIR/generation_config.json (for EOS ids).
ModelConfig load_hf_config(const std::string& model_dir);
// Parses the text of a config.json; `source` names the file in errors.
ModelConfig parse_hf_config(const std::string& json_text, const std::string& source);

}  // namespace retort
