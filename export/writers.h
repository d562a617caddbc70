// The writers behind run_export (export.cpp), each of which plans first and writes only when
// asked, so --dry-run shows exactly what a real run writes.
#pragma once

#include <functional>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>

#include "export/export.h"
#include "lora/lora.h"
#include "models/causal_lm.h"

namespace retort {

class GgufFile;
class Tokenizer;

struct ExportContext {
  const ExportOptions& options;
  // The architecture and its parameter names and shapes, adapters attached. Unless the weights
  // came from memory, its parameters are an unwritten skeleton: read values through weight().
  std::shared_ptr<CausalLM> model;
  // One parameter's value on CPU (any floating dtype; float32 when an adapter is folded in, as it
  // is for hf and gguf).
  std::function<at::Tensor(const std::string& hf_name)> weight;
  std::optional<LoadedAdapter> adapter;
  std::shared_ptr<GgufFile> source_gguf;    // when the model is a .gguf
  std::optional<std::string> chat_template;  // Jinja source to store, when there is one
  std::string model_name;
};

ExportPlan export_gguf_model(const ExportContext& context, bool write, std::ostream& log);
ExportPlan export_gguf_lora(const ExportContext& context, bool write, std::ostream& log);
ExportPlan export_hf_model(const ExportContext& context, bool write, std::ostream& log);
ExportPlan export_peft_adapter(const ExportContext& context, bool write, std::ostream& log);

// Ollama Modelfile text for a GGUF file: FROM, TEMPLATE (Ollama's Go template for the chat
// format the Jinja template is recognised as), PARAMETER stop for each end-of-turn string, and
// SYSTEM when given. bad_input when the chat format is not one Retort can translate.
// Stops that are not tokens of `tokenizer` (e.g. Llama 3.1's <|eom_id|> in a Llama 3.0 vocabulary)
// are left out.
std::string ollama_modelfile(const std::string& gguf_file_name, const std::string& chat_template_jinja,
                             const std::string& system_prompt, const Tokenizer& tokenizer);

// HF rows [n*hd, ...] in half-split rope order -> llama.cpp's interleaved order (docs/formats.md §2.4).
at::Tensor permute_for_gguf(const at::Tensor& weight, int64_t heads);

}  // namespace retort
