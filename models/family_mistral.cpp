#include "models/family_mistral.h"

#include "models/family_llama.h"

namespace retort {

ModelFamily mistral_family() {
  ModelFamily family = llama_like_family("mistral", "MistralForCausalLM", "llama", true);
  const auto read_llama = family.read_hf_config;
  family.read_hf_config = [read_llama](const HfConfigReader& reader, ModelConfig& config) {
    read_llama(reader, config);
    config.intermediate_size = reader.integer("intermediate_size", 14336);
    if (reader.has("sliding_window")) config.sliding_window = reader.integer("sliding_window", 0);
  };
  const auto write_llama = family.write_hf_config;
  family.write_hf_config = [write_llama](const ModelConfig& config, nlohmann::ordered_json& json) {
    write_llama(config, json);
    json["sliding_window"] = config.sliding_window ? nlohmann::ordered_json(*config.sliding_window) : nullptr;
  };
  return family;
}

}  // namespace retort
