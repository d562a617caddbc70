// config.json -> ModelConfig, accepting both the legacy rope keys (rope_theta, rope_scaling)
// and transformers v5's rope_parameters.
#include "models/config.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>

#include "io/atomic_file.h"
#include "io/error.h"
#include "models/family.h"

namespace retort {
namespace {

using Json = nlohmann::json;

void parse_rope(const HfConfigReader& reader, ModelConfig& config) {
  const Json& json = reader.json;
  config.rope.theta = reader.number(json, "rope_theta", config.rope.theta);  // a family may set its default
  const Json* scaling = nullptr;
  const char* scaling_key = "rope_scaling";
  if (json.contains("rope_parameters") && json["rope_parameters"].is_object()) {
    scaling = &json["rope_parameters"];
    scaling_key = "rope_parameters";
    config.rope.theta = reader.number(*scaling, "rope_theta", config.rope.theta);
  } else if (json.contains("rope_scaling") && json["rope_scaling"].is_object()) {
    scaling = &json["rope_scaling"];
  } else if (json.contains("rope_scaling") && !json["rope_scaling"].is_null()) {
    throw bad_input("expected an object or null").file(reader.source).key("rope_scaling");
  }
  if (scaling == nullptr) return;
  // Per-layer-type parameters (Gemma 3's {"full_attention": {...}, "sliding_attention": {...}})
  // name no type at the top: the family reads them.
  if (!scaling->contains("rope_type") && !scaling->contains("type")) return;
  std::string type = "default";
  for (const char* key : {"rope_type", "type"}) {
    if (scaling->contains(key) && (*scaling)[key].is_string()) {
      type = (*scaling)[key].get<std::string>();
      break;
    }
  }
  if (type == "default") {
    config.rope.type = RopeScaling::kDefault;
  } else if (type == "linear") {
    config.rope.type = RopeScaling::kLinear;
  } else if (type == "llama3") {
    config.rope.type = RopeScaling::kLlama3;
  } else {
    throw bad_input("rope type '" + type + "' is not supported (supported: default, linear, llama3)")
        .file(reader.source)
        .key(std::string(scaling_key) + ".rope_type");
  }
  config.rope.factor = reader.number(*scaling, "factor", 1.0);
  config.rope.low_freq_factor = reader.number(*scaling, "low_freq_factor", 1.0);
  config.rope.high_freq_factor = reader.number(*scaling, "high_freq_factor", 4.0);
  config.rope.original_max_position_embeddings = static_cast<int64_t>(
      reader.number(*scaling, "original_max_position_embeddings", static_cast<double>(config.max_position_embeddings)));
}

void add_unique(std::vector<int64_t>& ids, const std::vector<int64_t>& more) {
  for (int64_t id : more) {
    if (std::find(ids.begin(), ids.end(), id) == ids.end()) ids.push_back(id);
  }
}

}  // namespace

int64_t HfConfigReader::integer(const char* key, int64_t fallback) const {
  if (!has(key)) return fallback;
  if (!json[key].is_number_integer()) throw bad_input("expected an integer").file(source).key(key);
  return json[key].get<int64_t>();
}

double HfConfigReader::number(const Json& object, const std::string& key, double fallback) const {
  if (!object.contains(key) || object[key].is_null()) return fallback;
  if (!object[key].is_number()) throw bad_input("expected a number").file(source).key(key);
  return object[key].get<double>();
}

bool HfConfigReader::boolean(const char* key, bool fallback) const {
  if (!has(key)) return fallback;
  if (!json[key].is_boolean()) throw bad_input("expected true or false").file(source).key(key);
  return json[key].get<bool>();
}

std::string HfConfigReader::string(const char* key, const std::string& fallback) const {
  if (!has(key)) return fallback;
  if (!json[key].is_string()) throw bad_input("expected a string").file(source).key(key);
  return json[key].get<std::string>();
}

std::vector<int64_t> HfConfigReader::ids(const Json& object, const char* key) const {
  std::vector<int64_t> out;
  if (!object.contains(key) || object[key].is_null()) return out;
  const Json& value = object[key];
  if (value.is_number_integer()) return {value.get<int64_t>()};
  if (!value.is_array()) throw bad_input("expected a token id or a list of ids").file(source).key(key);
  for (const Json& id : value) {
    if (!id.is_number_integer()) throw bad_input("expected integer token ids").file(source).key(key);
    out.push_back(id.get<int64_t>());
  }
  return out;
}

std::optional<std::vector<bool>> HfConfigReader::sliding_layer_types() const {
  if (!has("layer_types")) return std::nullopt;
  const Json& types = json["layer_types"];
  if (!types.is_array()) throw bad_input("expected a list of layer types").file(source).key("layer_types");
  std::vector<bool> sliding;
  for (const Json& type : types) {
    const std::string name = type.is_string() ? type.get<std::string>() : "";
    if (name != "sliding_attention" && name != "full_attention") {
      throw bad_input("expected \"sliding_attention\" or \"full_attention\", got " + type.dump())
          .file(source)
          .key("layer_types");
    }
    sliding.push_back(name == "sliding_attention");
  }
  return sliding;
}

void ModelConfig::validate(const std::string& source) const {
  auto positive = [&](int64_t value, const char* key) {
    if (value <= 0) throw bad_input("must be positive, got " + std::to_string(value)).file(source).key(key);
  };
  positive(vocab_size, "vocab_size");
  positive(hidden_size, "hidden_size");
  positive(intermediate_size, "intermediate_size");
  positive(num_hidden_layers, "num_hidden_layers");
  positive(num_attention_heads, "num_attention_heads");
  positive(num_key_value_heads, "num_key_value_heads");
  positive(head_dim, "head_dim");
  if (num_attention_heads % num_key_value_heads != 0) {
    throw bad_input("num_attention_heads (" + std::to_string(num_attention_heads) +
                    ") is not a multiple of num_key_value_heads (" + std::to_string(num_key_value_heads) + ")")
        .file(source)
        .key("num_key_value_heads");
  }
  if (head_dim % 2 != 0) throw bad_input("head_dim must be even for RoPE").file(source).key("head_dim");
  if (rms_norm_eps <= 0) throw bad_input("must be positive").file(source).key("rms_norm_eps");
  if (rope.factor <= 0) throw bad_input("rope factor must be positive").file(source).key("rope_scaling.factor");
  if (!layer_attention.empty() && static_cast<int64_t>(layer_attention.size()) != num_hidden_layers) {
    throw bad_input("per-layer attention is given for " + std::to_string(layer_attention.size()) + " layers, not " +
                    std::to_string(num_hidden_layers))
        .file(source)
        .key("layer_types");
  }
}

std::string rope_scaling_name(RopeScaling scaling) {
  switch (scaling) {
    case RopeScaling::kDefault: return "default";
    case RopeScaling::kLinear: return "linear";
    case RopeScaling::kLlama3: return "llama3";
    case RopeScaling::kFrequencyDivisors: return "gguf_freq_factors";
  }
  return "";
}

LayerAttention ModelConfig::attention_of(int64_t layer) const {
  if (layer_attention.empty()) return {sliding_window, rope.theta};
  LayerAttention spec = layer_attention.at(static_cast<size_t>(layer));
  if (!spec.rope_theta) spec.rope_theta = rope.theta;
  return spec;
}

std::string ModelConfig::summary() const {
  return architecture + ": " + std::to_string(num_hidden_layers) + " layers, hidden " + std::to_string(hidden_size) +
         ", heads " + std::to_string(num_attention_heads) + "/" + std::to_string(num_key_value_heads) + " (head_dim " +
         std::to_string(head_dim) + "), mlp " + std::to_string(intermediate_size) + ", vocab " +
         std::to_string(vocab_size) + ", rope " + rope_scaling_name(rope.type) +
         (tie_word_embeddings ? ", tied embeddings" : "");
}

ModelConfig parse_hf_config(const std::string& json_text, const std::string& source) {
  Json json;
  try {
    json = Json::parse(json_text);
  } catch (const Json::exception& error) {
    throw bad_input(std::string("invalid JSON: ") + error.what()).file(source);
  }
  if (!json.is_object()) throw bad_input("config is not a JSON object").file(source);
  const HfConfigReader reader{json, source};
  ModelConfig config;
  if (json.contains("architectures")) {
    const Json& list = json["architectures"];
    if (!list.is_array() || list.empty() || !list[0].is_string()) {
      throw bad_input("expected a non-empty list of names").file(source).key("architectures");
    }
    config.architecture = list[0].get<std::string>();
  }
  config.model_type = reader.string("model_type", config.model_type);
  // The family's own fields and defaults. An architecture no family builds is read as Llama's,
  // so that building it fails with the list of supported ones (models/registry.h).
  const ModelFamily* family = find_family_for_architecture(config.architecture);
  if (family == nullptr && !json.contains("architectures")) {
    for (const ModelFamily& candidate : model_families()) {
      if (candidate.name == config.model_type) family = &candidate;
    }
  }
  if (family == nullptr) family = &model_families().front();
  config.hidden_size = reader.integer("hidden_size", 4096);
  config.num_hidden_layers = reader.integer("num_hidden_layers", 32);
  config.num_attention_heads = reader.integer("num_attention_heads", 32);
  config.num_key_value_heads = reader.integer("num_key_value_heads", config.num_attention_heads);
  if (config.num_attention_heads <= 0) {
    throw bad_input("must be positive").file(source).key("num_attention_heads");
  }
  config.head_dim = reader.integer("head_dim", config.hidden_size / config.num_attention_heads);
  config.rms_norm_eps = reader.number(json, "rms_norm_eps", 1e-6);
  config.tie_word_embeddings = reader.boolean("tie_word_embeddings", false);
  family->read_hf_config(reader, config);
  parse_rope(reader, config);
  const std::vector<int64_t> bos = reader.ids(json, "bos_token_id");
  if (!bos.empty()) config.bos_token_id = bos.front();
  config.eos_token_ids = reader.ids(json, "eos_token_id");
  const std::vector<int64_t> pad = reader.ids(json, "pad_token_id");
  if (!pad.empty()) config.pad_token_id = pad.front();
  config.torch_dtype = reader.string("dtype", reader.string("torch_dtype", ""));
  config.validate(source);
  return config;
}

std::string hf_config_json(const ModelConfig& config, const std::string& dtype_name) {
  const ModelFamily& family = family_for_architecture(config.architecture, "the model's config");
  nlohmann::ordered_json json;
  json["architectures"] = {config.architecture};
  json["model_type"] = family.name;
  json["vocab_size"] = config.vocab_size;
  json["hidden_size"] = config.hidden_size;
  json["intermediate_size"] = config.intermediate_size;
  json["num_hidden_layers"] = config.num_hidden_layers;
  json["num_attention_heads"] = config.num_attention_heads;
  json["num_key_value_heads"] = config.num_key_value_heads;
  json["head_dim"] = config.head_dim;
  json["max_position_embeddings"] = config.max_position_embeddings;
  json["rms_norm_eps"] = config.rms_norm_eps;
  json["hidden_act"] = "silu";
  json["rope_theta"] = config.rope.theta;
  if (config.rope.type == RopeScaling::kLlama3) {
    json["rope_scaling"] = {{"rope_type", "llama3"},
                            {"factor", config.rope.factor},
                            {"low_freq_factor", config.rope.low_freq_factor},
                            {"high_freq_factor", config.rope.high_freq_factor},
                            {"original_max_position_embeddings", config.rope.original_max_position_embeddings}};
  } else if (config.rope.type == RopeScaling::kLinear) {
    json["rope_scaling"] = {{"rope_type", "linear"}, {"factor", config.rope.factor}};
  } else if (config.rope.type != RopeScaling::kDefault) {
    throw bad_input("rope type '" + rope_scaling_name(config.rope.type) +
                    "' (per-frequency divisors from a GGUF rope_freqs tensor) has no config.json form; export "
                    "from the original HF checkpoint instead")
        .key("rope");
  }
  json["tie_word_embeddings"] = config.tie_word_embeddings;
  family.write_hf_config(config, json);
  if (config.bos_token_id) json["bos_token_id"] = *config.bos_token_id;
  if (!config.eos_token_ids.empty()) json["eos_token_id"] = config.eos_token_ids.front();
  if (config.pad_token_id) json["pad_token_id"] = *config.pad_token_id;
  json["torch_dtype"] = dtype_name;
  json["dtype"] = dtype_name;
  json["use_cache"] = true;
  return json.dump(2) + "\n";
}

std::string hf_generation_config_json(const ModelConfig& config, const std::vector<int64_t>& eos_token_ids) {
  nlohmann::ordered_json json;
  if (config.bos_token_id) json["bos_token_id"] = *config.bos_token_id;
  if (eos_token_ids.size() == 1) json["eos_token_id"] = eos_token_ids.front();
  if (eos_token_ids.size() > 1) json["eos_token_id"] = eos_token_ids;
  if (config.pad_token_id) json["pad_token_id"] = *config.pad_token_id;
  return json.dump(2) + "\n";
}

ModelConfig load_hf_config(const std::string& model_dir) {
  namespace fs = std::filesystem;
  const std::string config_path = (fs::path(model_dir) / "config.json").string();
  if (!fs::exists(config_path)) throw bad_input("no config.json in this model directory").file(model_dir);
  ModelConfig config = parse_hf_config(read_text_file(config_path), config_path);
  const std::string generation_path = (fs::path(model_dir) / "generation_config.json").string();
  if (fs::exists(generation_path)) {
    Json json;
    try {
      json = Json::parse(read_text_file(generation_path));
    } catch (const Json::exception& error) {
      throw bad_input(std::string("invalid JSON: ") + error.what()).file(generation_path);
    }
    const HfConfigReader reader{json, generation_path};
    add_unique(config.eos_token_ids, reader.ids(json, "eos_token_id"));
    if (!config.bos_token_id) {
      const auto bos = reader.ids(json, "bos_token_id");
      if (!bos.empty()) config.bos_token_id = bos.front();
    }
    if (!config.pad_token_id) {
      const auto pad = reader.ids(json, "pad_token_id");
      if (!pad.empty()) config.pad_token_id = pad.front();
    }
  }
  return config;
}

}  // namespace retort
