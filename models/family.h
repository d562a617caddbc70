// A model family: everything Retort knows about one architecture, registered from its own file
// pair (models/family_<name>.{h,cpp}) with one line in models/family.cpp -- its config.json
// reader and writer, its GGUF metadata reader and writer, its HF <-> GGUF tensor-name table, its
// default chat template, and the model it builds. The pattern is llama.cpp's per-architecture
// tables (src/llama-arch.cpp): code outside the family file asks the family, never the name.
#pragma once

#include <nlohmann/json.hpp>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "io/gguf.h"
#include "models/config.h"
#include "models/hf_config_reader.h"

namespace retort {

class CausalLM;

// GGUF metadata as key/value pairs, in the order written.
using GgufMetadata = std::vector<std::pair<std::string, GgufValue>>;

struct TensorNameRule {
  std::string hf;    // "model.embed_tokens.weight", or after "model.layers.N.": "self_attn.q_proj."
  std::string gguf;  // "token_embd.weight", or after "blk.N.": "attn_q."
};

struct ModelFamily {
  std::string name;                           // "llama"
  std::vector<std::string> hf_architectures;  // config.json `architectures` it builds
  std::string gguf_architecture;              // GGUF general.architecture
  // The built-in chat template (tokenizer/chat_template.h) for this family's instruct models when
  // a checkpoint carries none; empty: none is assumed.
  std::string default_chat_template;

  // config.json: the family's fields (defaults, biases, windows) on top of the common ones.
  std::function<void(const HfConfigReader&, ModelConfig&)> read_hf_config;
  std::function<void(const ModelConfig&, nlohmann::ordered_json&)> write_hf_config;
  // GGUF: the family's keys on top of the common `<arch>.*` ones.
  std::function<void(const GgufFile&, ModelConfig&)> read_gguf_config;
  std::function<void(const ModelConfig&, GgufMetadata&)> write_gguf_config;

  std::vector<TensorNameRule> gguf_names;        // whole tensor names
  std::vector<TensorNameRule> gguf_layer_names;  // name prefixes inside decoder layer N
  // llama.cpp's LLAMA rope pairs rows (i, i + hd/2) as (2i, 2i + 1): q/k rows are permuted in GGUF.
  bool gguf_permutes_qk = false;
  // Added to every `*norm.weight` tensor in GGUF: llama.cpp's converter folds Gemma's (1 + w)
  // RMSNorm into the stored weight, so llama.cpp multiplies by the weight alone. 0: stored as is.
  double gguf_norm_offset = 0.0;
  // Whether the family's GGUF metadata carries its sliding windows (read_/write_gguf_config do).
  bool gguf_has_sliding_windows = false;

  std::function<std::shared_ptr<CausalLM>(const ModelConfig&)> create;

  // "model.layers.3.self_attn.q_proj.weight" -> "blk.3.attn_q.weight"; internal_error when unmapped.
  std::string gguf_tensor_name(const std::string& hf_name) const;
  // The head count of a q/k weight whose GGUF rows are permuted, else nullopt.
  std::optional<int64_t> gguf_permuted_heads(const ModelConfig& config, const std::string& hf_name) const;
  // What GGUF adds to the values of tensor `hf_name` (gguf_norm_offset for norm weights, else 0).
  double gguf_value_offset(const std::string& hf_name) const;
};

// The HF <-> GGUF names every decoder family shares: embeddings, final norm and output head
// (whole names), and the attention and MLP projections (inside decoder layer N).
std::vector<TensorNameRule> shared_gguf_names();
std::vector<TensorNameRule> shared_gguf_projection_names();

// Every registered family, in registration order.
const std::vector<ModelFamily>& model_families();
// The family building config.json `architectures[0]`; bad_input naming `source` and listing them.
const ModelFamily& family_for_architecture(const std::string& hf_architecture, const std::string& source);
const ModelFamily* find_family_for_architecture(const std::string& hf_architecture);
// The family for GGUF general.architecture; bad_input naming the file and key, listing them.
const ModelFamily& family_for_gguf(const std::string& gguf_architecture, const std::string& source);

// The default chat template of the family of the model at `model_path` (an HF directory's
// config.json or a GGUF file's general.architecture); "" when unknown or the family has none.
std::string family_chat_template_of(const std::string& model_path);

// The `<arch>.*` metadata every family writes (sizes, heads, norm epsilon, rope), then its own.
GgufMetadata gguf_architecture_metadata(const ModelFamily& family, const ModelConfig& config);

}  // namespace retort
