#include "models/family_qwen3.h"

#include "models/family_llama.h"
#include "models/family_qwen2.h"

namespace retort {

ModelFamily qwen3_family() {
  ModelFamily family = llama_like_family("qwen3", "Qwen3ForCausalLM", "qwen3", /*permutes_qk=*/false);  // NEOX rope
  family.default_chat_template = "qwen3";
  family.gguf_layer_names.push_back({"self_attn.q_norm.", "attn_q_norm."});
  family.gguf_layer_names.push_back({"self_attn.k_norm.", "attn_k_norm."});
  family.read_hf_config = [](const HfConfigReader& reader, ModelConfig& config) {
    config.vocab_size = reader.integer("vocab_size", 151936);
    config.intermediate_size = reader.integer("intermediate_size", 22016);
    config.max_position_embeddings = reader.integer("max_position_embeddings", 32768);
    config.attention_bias = reader.boolean("attention_bias", false);
    config.o_proj_bias = config.attention_bias;  // one flag for q, k, v and o, as in Llama
    config.qk_norm = true;
    read_qwen_sliding_layers(reader, config);
  };
  family.write_hf_config = [](const ModelConfig& config, nlohmann::ordered_json& json) {
    json["attention_bias"] = config.attention_bias;
    write_qwen_sliding_layers(config, json);
  };
  family.read_gguf_config = [](const GgufFile&, ModelConfig& config) { config.qk_norm = true; };
  return family;
}

}  // namespace retort
