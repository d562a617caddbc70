#include "models/family.h"

#include <filesystem>
#include <regex>

#include "io/error.h"
#include "io/text.h"
#include "models/family_gemma3.h"
#include "models/family_llama.h"
#include "models/family_mistral.h"
#include "models/family_qwen2.h"
#include "models/family_qwen3.h"

namespace retort {

const std::vector<ModelFamily>& model_families() {
  // One line per family. (Static initialisers in a static library would be dropped by the
  // linker, so families are listed here rather than registering themselves.)
  static const std::vector<ModelFamily> families = {
      llama_family(),
      mistral_family(),
      qwen2_family(),
      qwen3_family(),
      gemma3_family(),
  };
  return families;
}

std::vector<TensorNameRule> shared_gguf_names() {
  return {
      {"model.embed_tokens.weight", "token_embd.weight"},
      {"model.norm.weight", "output_norm.weight"},
      {"lm_head.weight", "output.weight"},
  };
}

std::vector<TensorNameRule> shared_gguf_projection_names() {
  return {
      {"self_attn.q_proj.", "attn_q."},   {"self_attn.k_proj.", "attn_k."}, {"self_attn.v_proj.", "attn_v."},
      {"self_attn.o_proj.", "attn_output."}, {"mlp.gate_proj.", "ffn_gate."}, {"mlp.up_proj.", "ffn_up."},
      {"mlp.down_proj.", "ffn_down."},
  };
}

const ModelFamily* find_family_for_architecture(const std::string& hf_architecture) {
  for (const ModelFamily& family : model_families()) {
    for (const std::string& name : family.hf_architectures) {
      if (name == hf_architecture) return &family;
    }
  }
  return nullptr;
}

const ModelFamily& family_for_architecture(const std::string& hf_architecture, const std::string& source) {
  if (const ModelFamily* family = find_family_for_architecture(hf_architecture)) return *family;
  std::vector<std::string> names;
  for (const ModelFamily& family : model_families()) {
    names.insert(names.end(), family.hf_architectures.begin(), family.hf_architectures.end());
  }
  std::sort(names.begin(), names.end());
  throw bad_input("architecture '" + hf_architecture + "' is not supported (supported: " + join(names, ", ") + ")")
      .file(source)
      .key("architectures");
}

const ModelFamily& family_for_gguf(const std::string& gguf_architecture, const std::string& source) {
  std::vector<std::string> names;
  for (const ModelFamily& family : model_families()) {
    if (family.gguf_architecture.empty()) continue;  // no GGUF form yet
    if (family.gguf_architecture == gguf_architecture) return family;  // the first registered for it
    if (std::find(names.begin(), names.end(), family.gguf_architecture) == names.end()) {
      names.push_back(family.gguf_architecture);
    }
  }
  throw bad_input("GGUF architecture '" + gguf_architecture + "' is not supported (supported: " + join(names, ", ") +
                  ")")
      .file(source)
      .key("general.architecture");
}

std::string ModelFamily::gguf_tensor_name(const std::string& hf_name) const {
  for (const TensorNameRule& rule : gguf_names) {
    if (hf_name == rule.hf) return rule.gguf;
  }
  static const std::regex layer_pattern(R"(model\.layers\.(\d+)\.(.+))");
  std::smatch match;
  if (std::regex_match(hf_name, match, layer_pattern)) {
    const std::string rest = match[2].str();
    for (const TensorNameRule& rule : gguf_layer_names) {
      if (rest.rfind(rule.hf, 0) == 0) return "blk." + match[1].str() + "." + rule.gguf + rest.substr(rule.hf.size());
    }
  }
  throw internal_error("no GGUF name for tensor").tensor(hf_name);
}

std::optional<int64_t> ModelFamily::gguf_permuted_heads(const ModelConfig& config, const std::string& hf_name) const {
  if (!gguf_permutes_qk) return std::nullopt;
  if (hf_name.find(".self_attn.q_proj.") != std::string::npos) return config.num_attention_heads;
  if (hf_name.find(".self_attn.k_proj.") != std::string::npos) return config.num_key_value_heads;
  return std::nullopt;
}

double ModelFamily::gguf_value_offset(const std::string& hf_name) const {
  static const std::string suffix = "norm.weight";
  const bool is_norm = hf_name.size() >= suffix.size() && hf_name.compare(hf_name.size() - suffix.size(), suffix.size(), suffix) == 0;
  return is_norm ? gguf_norm_offset : 0.0;
}

std::string family_chat_template_of(const std::string& model_path) {
  namespace fs = std::filesystem;
  const ModelFamily* family = nullptr;
  try {
    if (fs::is_directory(model_path)) {
      family = find_family_for_architecture(load_hf_config(model_path).architecture);
    } else if (fs::is_regular_file(model_path)) {
      const auto file = GgufFile::open(model_path);
      for (const ModelFamily& candidate : model_families()) {
        if (!family && !candidate.gguf_architecture.empty() &&
            candidate.gguf_architecture == file->get_string("general.architecture")) {
          family = &candidate;
        }
      }
    }
  } catch (const Error&) {
    return "";  // not a model (a tokenizer folder): the template question is answered elsewhere
  }
  return family ? family->default_chat_template : "";
}

GgufMetadata gguf_architecture_metadata(const ModelFamily& family, const ModelConfig& config) {
  GgufMetadata out;
  const std::string& arch = family.gguf_architecture;
  auto u32 = [&](const std::string& key, int64_t value) {
    out.emplace_back(arch + "." + key, GgufValue{static_cast<uint32_t>(value)});
  };
  auto f32 = [&](const std::string& key, double value) {
    out.emplace_back(arch + "." + key, GgufValue{static_cast<float>(value)});
  };
  u32("context_length", config.max_position_embeddings);
  u32("embedding_length", config.hidden_size);
  u32("block_count", config.num_hidden_layers);
  u32("feed_forward_length", config.intermediate_size);
  u32("attention.head_count", config.num_attention_heads);
  u32("attention.head_count_kv", config.num_key_value_heads);
  f32("attention.layer_norm_rms_epsilon", config.rms_norm_eps);
  f32("rope.freq_base", config.rope.theta);
  u32("rope.dimension_count", config.head_dim);
  u32("attention.key_length", config.head_dim);
  u32("attention.value_length", config.head_dim);
  u32("vocab_size", config.vocab_size);
  if (config.rope.type == RopeScaling::kLinear) {
    out.emplace_back(arch + ".rope.scaling.type", GgufValue{std::string("linear")});
    f32("rope.scaling.factor", config.rope.factor);
  }
  if (family.write_gguf_config) family.write_gguf_config(config, out);
  return out;
}

}  // namespace retort
