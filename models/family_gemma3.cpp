#include "models/family_gemma3.h"

#include <cmath>
#include <set>

#include "io/error.h"
#include "models/gemma3.h"

namespace retort {
namespace {

using Json = nlohmann::json;

// transformers' Gemma3TextConfig defaults.
constexpr double kGlobalTheta = 1000000.0, kLocalTheta = 10000.0;

// The RoPE base of one layer type: v5's rope_parameters[type].rope_theta, else the legacy key.
// Global layers may scale linearly (4B and larger: factor 8); local layers never do.
double layer_type_theta(const HfConfigReader& reader, const char* layer_type, const char* legacy_key, double fallback,
                        ModelConfig& config) {
  const Json& json = reader.json;
  if (json.contains("rope_parameters") && json["rope_parameters"].is_object() &&
      json["rope_parameters"].contains(layer_type) && json["rope_parameters"][layer_type].is_object()) {
    const Json& parameters = json["rope_parameters"][layer_type];
    const std::string type = parameters.value("rope_type", std::string("default"));
    const bool global = std::string(layer_type) == "full_attention";
    if (type == "linear" && global) {
      config.rope.type = RopeScaling::kLinear;
      config.rope.factor = reader.number(parameters, "factor", 1.0);
    } else if (type != "default") {
      throw bad_input("Gemma 3 RoPE scaling '" + type + "' on " + layer_type + " layers is not supported (supported: " +
                      "linear on full_attention layers)")
          .file(reader.source)
          .key(std::string("rope_parameters.") + layer_type);
    }
    return reader.number(parameters, "rope_theta", fallback);
  }
  return reader.number(json, legacy_key, fallback);
}

void refuse_unsupported(const HfConfigReader& reader) {
  for (const char* key : {"attn_logit_softcapping", "final_logit_softcapping"}) {
    if (reader.has(key)) throw bad_input("logit soft-capping is not supported").file(reader.source).key(key);
  }
  if (reader.boolean("use_bidirectional_attention", false)) {
    throw bad_input("bidirectional attention is not supported").file(reader.source).key("use_bidirectional_attention");
  }
  const std::string activation = reader.string("hidden_activation", "gelu_pytorch_tanh");
  if (activation != "gelu_pytorch_tanh") {
    throw bad_input("expected gelu_pytorch_tanh, got '" + activation + "'").file(reader.source).key("hidden_activation");
  }
}

// Which layers slide: layer_types, else all but every sliding_window_pattern-th (default 6).
std::vector<bool> sliding_layers(const HfConfigReader& reader, int64_t layers) {
  if (auto types = reader.sliding_layer_types()) return *types;
  std::vector<bool> sliding;
  const int64_t pattern = reader.integer("sliding_window_pattern", 6);
  if (pattern <= 0) throw bad_input("must be positive").file(reader.source).key("sliding_window_pattern");
  for (int64_t layer = 0; layer < layers; ++layer) sliding.push_back((layer + 1) % pattern != 0);
  return sliding;
}

void read_gemma3_config(const HfConfigReader& reader, ModelConfig& config) {
  refuse_unsupported(reader);
  config.vocab_size = reader.integer("vocab_size", 262208);
  config.intermediate_size = reader.integer("intermediate_size", 9216);
  config.max_position_embeddings = reader.integer("max_position_embeddings", 131072);
  config.num_key_value_heads = reader.integer("num_key_value_heads", 4);
  config.head_dim = reader.integer("head_dim", 256);
  config.tie_word_embeddings = reader.boolean("tie_word_embeddings", true);
  config.attention_bias = reader.boolean("attention_bias", false);
  config.o_proj_bias = config.attention_bias;
  config.query_pre_attn_scalar = reader.number(reader.json, "query_pre_attn_scalar", 256.0);
  // Legacy rope_scaling (read by parse_rope) scales the global layers only, as transformers does.
  if (config.rope.type != RopeScaling::kDefault && config.rope.type != RopeScaling::kLinear) {
    throw bad_input("Gemma 3 RoPE scaling '" + rope_scaling_name(config.rope.type) + "' is not supported (supported: " +
                    "linear)")
        .file(reader.source)
        .key("rope_scaling");
  }
  const double global = layer_type_theta(reader, "full_attention", "rope_theta", kGlobalTheta, config);
  const double local = layer_type_theta(reader, "sliding_attention", "rope_local_base_freq", kLocalTheta, config);
  config.rope.theta = global;
  const int64_t window = reader.integer("sliding_window", 4096);
  config.layer_attention.clear();
  for (const bool slides : sliding_layers(reader, config.num_hidden_layers)) {
    config.layer_attention.push_back(slides ? LayerAttention{window, local, false} : LayerAttention{std::nullopt, global});
  }
}

void write_gemma3_config(const ModelConfig& config, nlohmann::ordered_json& json) {
  json.erase("hidden_act");
  json["hidden_activation"] = "gelu_pytorch_tanh";
  json["attention_bias"] = config.attention_bias;
  // An integer in transformers' Gemma3TextConfig (its strict validation refuses 256.0).
  const double scalar = config.query_pre_attn_scalar.value_or(static_cast<double>(config.head_dim));
  if (scalar == std::round(scalar)) {
    json["query_pre_attn_scalar"] = static_cast<int64_t>(scalar);
  } else {
    json["query_pre_attn_scalar"] = scalar;
  }
  nlohmann::ordered_json types = nlohmann::ordered_json::array();
  for (int64_t layer = 0; layer < config.num_hidden_layers; ++layer) {
    const LayerAttention spec = config.attention_of(layer);
    types.push_back(spec.sliding_window ? "sliding_attention" : "full_attention");
    if (spec.sliding_window) {
      json["sliding_window"] = *spec.sliding_window;
      json["rope_local_base_freq"] = *spec.rope_theta;
    } else {
      json["rope_theta"] = *spec.rope_theta;
    }
  }
  json["layer_types"] = types;
}

// llama.cpp's default for Gemma 3 GGUF files: every sixth layer (5, 11, ...) global.
constexpr int64_t kGgufSlidingPattern = 6;

bool llama_cpp_pattern_slides(int64_t layer, int64_t pattern) {
  return pattern == 0 || layer % pattern < pattern - 1;
}

// gemma3.attention.sliding_window_pattern: absent (llama.cpp's 6), a period, or one bool per layer.
std::vector<bool> gguf_sliding_layers(const GgufFile& file, int64_t layers) {
  const std::string key = "gemma3.attention.sliding_window_pattern";
  std::vector<bool> sliding;
  const GgufValue* value = file.find(key);
  if (value != nullptr && std::holds_alternative<GgufArray>(value->data)) {
    const auto* flags = std::get_if<std::vector<bool>>(&std::get<GgufArray>(value->data).data);
    if (flags == nullptr || static_cast<int64_t>(flags->size()) != layers) {
      throw bad_input("expected one bool per layer (" + std::to_string(layers) + ")").file(file.path()).key(key);
    }
    return *flags;
  }
  const int64_t pattern = value == nullptr ? kGgufSlidingPattern : file.get_u32(key);
  for (int64_t layer = 0; layer < layers; ++layer) sliding.push_back(llama_cpp_pattern_slides(layer, pattern));
  return sliding;
}

// llama.cpp derives the attention scale from the size (gemma_pytorch's rule): head_dim^-1/2, but
// (hidden / heads)^-1/2 for the 62-layer 27B.
double llama_cpp_query_pre_attn_scalar(const ModelConfig& config) {
  if (config.num_hidden_layers == 62) return static_cast<double>(config.hidden_size / config.num_attention_heads);
  return static_cast<double>(config.head_dim);
}

void read_gemma3_gguf(const GgufFile& file, ModelConfig& config) {
  const std::string p = "gemma3.";
  // rope.scaling (linear, read by config_from_gguf) applies to the global layers only, as in llama.cpp.
  if (const auto cap = file.find_f32(p + "final_logit_softcapping"); cap && *cap != 0.0f) {
    throw bad_input("logit soft-capping is not supported").file(file.path()).key(p + "final_logit_softcapping");
  }
  config.qk_norm = true;
  config.query_pre_attn_scalar = llama_cpp_query_pre_attn_scalar(config);
  const double global = config.rope.theta;
  const double local = file.find_f32(p + "rope.freq_base_swa").value_or(static_cast<float>(kLocalTheta));
  const uint32_t window = file.find_u32(p + "attention.sliding_window").value_or(0);
  config.layer_attention.clear();
  if (window == 0) return;  // llama.cpp: no sliding window, every layer global
  for (const bool slides : gguf_sliding_layers(file, config.num_hidden_layers)) {
    config.layer_attention.push_back(slides ? LayerAttention{window, local, false} : LayerAttention{std::nullopt, global});
  }
}

void write_gemma3_gguf(const ModelConfig& config, GgufMetadata& out) {
  const double scalar = config.query_pre_attn_scalar.value_or(static_cast<double>(config.head_dim));
  if (scalar != llama_cpp_query_pre_attn_scalar(config)) {
    throw bad_input("llama.cpp derives Gemma 3's attention scale from the model size (query_pre_attn_scalar " +
                    std::to_string(llama_cpp_query_pre_attn_scalar(config)) + "), this model uses " +
                    std::to_string(scalar) + "; export hf instead")
        .key("query_pre_attn_scalar");
  }
  std::set<int64_t> windows;
  std::set<double> local_thetas;
  std::vector<bool> sliding;
  bool standard_pattern = true;
  for (int64_t layer = 0; layer < config.num_hidden_layers; ++layer) {
    const LayerAttention spec = config.attention_of(layer);
    sliding.push_back(spec.sliding_window.has_value());
    standard_pattern = standard_pattern && sliding.back() == llama_cpp_pattern_slides(layer, kGgufSlidingPattern);
    if (spec.sliding_window) {
      windows.insert(*spec.sliding_window);
      local_thetas.insert(*spec.rope_theta);
    } else if (*spec.rope_theta != config.rope.theta) {
      throw bad_input("GGUF has one RoPE base for global layers; layer " + std::to_string(layer) + " has its own")
          .key("rope_theta");
    }
  }
  if (windows.size() > 1 || local_thetas.size() > 1) {
    throw bad_input("GGUF has one sliding window and one local RoPE base; this model's local layers differ")
        .key("sliding_window");
  }
  if (windows.empty()) return;
  out.emplace_back("gemma3.attention.sliding_window", GgufValue{static_cast<uint32_t>(*windows.begin())});
  out.emplace_back("gemma3.rope.freq_base_swa", GgufValue{static_cast<float>(*local_thetas.begin())});
  if (!standard_pattern) out.emplace_back("gemma3.attention.sliding_window_pattern", GgufValue{GgufArray{sliding}});
}

// HF <-> GGUF tensor names (llama.cpp's gemma3 tensors).
void add_gguf_names(ModelFamily& family) {
  family.gguf_names = shared_gguf_names();
  family.gguf_layer_names = shared_gguf_projection_names();
  family.gguf_layer_names.insert(family.gguf_layer_names.end(),
                                 {{"input_layernorm.weight", "attn_norm.weight"},
                                  {"self_attn.q_norm.", "attn_q_norm."},
                                  {"self_attn.k_norm.", "attn_k_norm."},
                                  {"post_attention_layernorm.weight", "post_attention_norm.weight"},
                                  {"pre_feedforward_layernorm.weight", "ffn_norm.weight"},
                                  {"post_feedforward_layernorm.weight", "post_ffw_norm.weight"}});
}

}  // namespace

ModelFamily gemma3_family() {
  ModelFamily family;
  family.name = "gemma3_text";
  family.hf_architectures = {"Gemma3ForCausalLM"};
  family.default_chat_template = "gemma3";
  family.read_hf_config = read_gemma3_config;
  family.write_hf_config = write_gemma3_config;
  family.gguf_architecture = "gemma3";
  family.read_gguf_config = read_gemma3_gguf;
  family.write_gguf_config = write_gemma3_gguf;
  family.gguf_norm_offset = 1.0;  // llama.cpp's converter stores Gemma's (1 + w) as the weight
  family.gguf_has_sliding_windows = true;
  add_gguf_names(family);
  family.create = [](const ModelConfig& config) -> std::shared_ptr<CausalLM> {
    return std::make_shared<Gemma3ForCausalLM>(config);
  };
  return family;
}

}  // namespace retort
