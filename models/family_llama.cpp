#include "models/family_llama.h"

#include "models/llama.h"

namespace retort {

ModelFamily llama_like_family(std::string name, std::string hf_architecture, std::string gguf_architecture,
                              bool permutes_qk) {
  ModelFamily family;
  family.name = std::move(name);
  family.hf_architectures = {std::move(hf_architecture)};
  family.gguf_architecture = std::move(gguf_architecture);
  family.gguf_permutes_qk = permutes_qk;
  family.gguf_names = shared_gguf_names();
  family.gguf_layer_names = shared_gguf_projection_names();
  family.gguf_layer_names.push_back({"input_layernorm.weight", "attn_norm.weight"});
  family.gguf_layer_names.push_back({"post_attention_layernorm.weight", "ffn_norm.weight"});
  family.read_hf_config = [](const HfConfigReader& reader, ModelConfig& config) {
    config.vocab_size = reader.integer("vocab_size", 32000);
    config.intermediate_size = reader.integer("intermediate_size", 11008);
    config.max_position_embeddings = reader.integer("max_position_embeddings", 2048);
    config.attention_bias = reader.boolean("attention_bias", false);
    config.o_proj_bias = config.attention_bias;  // Llama's attention_bias covers o_proj too
    config.mlp_bias = reader.boolean("mlp_bias", false);
  };
  family.write_hf_config = [](const ModelConfig& config, nlohmann::ordered_json& json) {
    json["attention_bias"] = config.attention_bias;
    json["mlp_bias"] = config.mlp_bias;
  };
  family.create = [](const ModelConfig& config) -> std::shared_ptr<CausalLM> {
    return std::make_shared<LlamaForCausalLM>(config);
  };
  return family;
}

ModelFamily llama_family() { return llama_like_family("llama", "LlamaForCausalLM", "llama", true); }

}  // namespace retort
