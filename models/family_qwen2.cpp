#include "models/family_qwen2.h"

#include "models/family_llama.h"

namespace retort {

void read_qwen_sliding_layers(const HfConfigReader& reader, ModelConfig& config) {
  if (!reader.boolean("use_sliding_window", false)) return;
  const int64_t window = reader.integer("sliding_window", 4096);
  const int64_t first_sliding = reader.integer("max_window_layers", 28);
  std::vector<bool> sliding;
  if (const auto types = reader.sliding_layer_types()) {
    sliding = *types;
  } else {
    for (int64_t layer = 0; layer < config.num_hidden_layers; ++layer) sliding.push_back(layer >= first_sliding);
  }
  config.layer_attention.clear();
  bool any = false;
  for (const bool slides : sliding) {
    config.layer_attention.push_back({slides ? std::optional<int64_t>(window) : std::nullopt, std::nullopt});
    any = any || slides;
  }
  if (!any) config.layer_attention.clear();  // every layer sees the whole context
}

void write_qwen_sliding_layers(const ModelConfig& config, nlohmann::ordered_json& json) {
  std::optional<int64_t> window = config.sliding_window;
  nlohmann::ordered_json types = nlohmann::ordered_json::array();
  for (int64_t layer = 0; layer < config.num_hidden_layers; ++layer) {
    const std::optional<int64_t> layer_window = config.attention_of(layer).sliding_window;
    if (layer_window) window = layer_window;
    types.push_back(layer_window ? "sliding_attention" : "full_attention");
  }
  json["use_sliding_window"] = window.has_value();
  json["sliding_window"] = window ? nlohmann::ordered_json(*window) : nullptr;
  if (window) json["layer_types"] = types;
}

ModelFamily qwen2_family() {
  ModelFamily family = llama_like_family("qwen2", "Qwen2ForCausalLM", "qwen2", /*permutes_qk=*/false);  // NEOX rope
  family.default_chat_template = "chatml";
  family.read_hf_config = [](const HfConfigReader& reader, ModelConfig& config) {
    config.vocab_size = reader.integer("vocab_size", 151936);
    config.intermediate_size = reader.integer("intermediate_size", 22016);
    config.max_position_embeddings = reader.integer("max_position_embeddings", 32768);
    config.attention_bias = true;  // Qwen2 always has q/k/v biases (and none on o_proj)
    read_qwen_sliding_layers(reader, config);
  };
  family.write_hf_config = write_qwen_sliding_layers;
  family.read_gguf_config = [](const GgufFile&, ModelConfig& config) { config.attention_bias = true; };
  return family;
}

}  // namespace retort
