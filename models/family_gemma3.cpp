#include "models/family_gemma3.h"

#include <cmath>

#include "io/error.h"
#include "models/gemma3.h"

namespace retort {
namespace {

using Json = nlohmann::json;

// transformers' Gemma3TextConfig defaults.
constexpr double kGlobalTheta = 1000000.0, kLocalTheta = 10000.0;

// The RoPE base of one layer type: v5's rope_parameters[type].rope_theta, else the legacy key.
double layer_type_theta(const HfConfigReader& reader, const char* layer_type, const char* legacy_key, double fallback) {
  const Json& json = reader.json;
  if (json.contains("rope_parameters") && json["rope_parameters"].is_object() &&
      json["rope_parameters"].contains(layer_type) && json["rope_parameters"][layer_type].is_object()) {
    const Json& parameters = json["rope_parameters"][layer_type];
    const std::string type = parameters.value("rope_type", std::string("default"));
    if (type != "default") {
      throw bad_input("Gemma 3 RoPE scaling ('" + type + "' on " + layer_type + " layers) is not supported yet")
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
  if (reader.has("rope_scaling")) {
    throw bad_input("Gemma 3 RoPE scaling on global layers (4B and larger) is not supported yet")
        .file(reader.source)
        .key("rope_scaling");
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
  const double global = layer_type_theta(reader, "full_attention", "rope_theta", kGlobalTheta);
  const double local = layer_type_theta(reader, "sliding_attention", "rope_local_base_freq", kLocalTheta);
  config.rope.theta = global;
  const int64_t window = reader.integer("sliding_window", 4096);
  config.layer_attention.clear();
  for (const bool slides : sliding_layers(reader, config.num_hidden_layers)) {
    config.layer_attention.push_back(slides ? LayerAttention{window, local} : LayerAttention{std::nullopt, global});
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

}  // namespace

ModelFamily gemma3_family() {
  ModelFamily family;
  family.name = "gemma3_text";
  family.hf_architectures = {"Gemma3ForCausalLM"};
  family.default_chat_template = "gemma";
  family.read_hf_config = read_gemma3_config;
  family.write_hf_config = write_gemma3_config;
  family.create = [](const ModelConfig& config) -> std::shared_ptr<CausalLM> {
    return std::make_shared<Gemma3ForCausalLM>(config);
  };
  return family;
}

}  // namespace retort
