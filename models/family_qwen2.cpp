#include "models/family_qwen2.h"

#include "models/family_llama.h"

namespace retort {

ModelFamily qwen2_family() {
  ModelFamily family = llama_like_family("qwen2", "Qwen2ForCausalLM", "qwen2", /*permutes_qk=*/false);  // NEOX rope
  family.default_chat_template = "chatml";
  family.read_hf_config = [](const HfConfigReader& reader, ModelConfig& config) {
    config.vocab_size = reader.integer("vocab_size", 151936);
    config.intermediate_size = reader.integer("intermediate_size", 22016);
    config.max_position_embeddings = reader.integer("max_position_embeddings", 32768);
    config.attention_bias = true;  // Qwen2 always has q/k/v biases (and none on o_proj)
    if (reader.boolean("use_sliding_window", false) && reader.has("sliding_window")) {
      config.sliding_window = reader.integer("sliding_window", 0);
    }
  };
  family.write_hf_config = [](const ModelConfig& config, nlohmann::ordered_json& json) {
    json["use_sliding_window"] = config.sliding_window.has_value();
    if (config.sliding_window) json["sliding_window"] = *config.sliding_window;
  };
  family.read_gguf_config = [](const GgufFile&, ModelConfig& config) { config.attention_bias = true; };
  return family;
}

}  // namespace retort
