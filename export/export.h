// `retort export`: a model (HF directory or .gguf), optionally with a PEFT LoRA adapter, written
// as a merged HF checkpoint, a PEFT adapter, a GGUF model (with an Ollama Modelfile) or a GGUF
// LoRA adapter. Each writer is fed from one plan (ExportPlan), which --dry-run prints.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "export/quant_scheme.h"
#include "models/causal_lm.h"
#include "models/quantized_storage.h"

namespace retort {

enum class ExportFormat { kHf, kPeft, kGguf, kGgufLora };

// "hf" | "peft" | "gguf" | "gguf-lora"; bad_input listing them otherwise.
ExportFormat parse_export_format(const std::string& name);
std::string export_format_name(ExportFormat format);

struct ExportOptions {
  std::string model_path;    // HF model directory or .gguf file
  std::string adapter_path;  // PEFT adapter directory; required for peft and gguf-lora
  ExportFormat format = ExportFormat::kGguf;
  std::string quant;         // gguf/gguf-lora: f32|f16|bf16|q8_0|q4_0|q4_k_m|q6_k; hf: f32|f16|bf16
  std::string out;           // directory (hf, peft) or .gguf file (gguf, gguf-lora)
  bool dry_run = false;
  bool force = false;        // replace an existing output
  std::string chat_template;  // Jinja file or a model path to take it from; default: the model's own
  std::string system_prompt;  // Ollama Modelfile SYSTEM
  std::string model_name;     // general.name / Modelfile comment; default: from the path
  uint64_t max_shard_bytes = 5'000'000'000;  // hf
  bool modelfile = true;      // gguf: write an Ollama Modelfile beside the file
  bool allow_dora = false;    // peft: write DoRA magnitudes, which vLLM and llama.cpp reject
  // hf/gguf with an adapter trained on a quantized base: the decoder projections are merged as
  // that base computed them (quantized, then dequantized, in `trained_dtype`), so the export is
  // the function that was trained (export.merge_into: dequantized). kNone: the checkpoint's own
  // weights (merge_into: original).
  BaseQuantization trained_on = BaseQuantization::kNone;
  at::ScalarType trained_dtype = at::kFloat;
  // Weights already in memory (full fine-tuning's result) to export instead of model_path's;
  // model_path still provides the tokenizer and chat template. Moved to CPU float32.
  std::shared_ptr<CausalLM> trained_model;
};

struct PlannedTensor {
  std::string name;        // name in the output
  std::string source;      // parameter it comes from
  std::vector<int64_t> shape;  // output dims (GGUF ne order for GGUF, PyTorch order otherwise)
  std::string type;        // "F16", "Q4_K", "BF16", ...
  uint64_t bytes = 0;
  std::string note;        // e.g. a fallback type and why
};

struct ExportPlan {
  std::vector<std::string> files;  // what will be written, relative to `out` for directories
  std::vector<PlannedTensor> tensors;
  std::vector<std::string> warnings;
  uint64_t total_bytes = 0;
};

struct ExportResult {
  ExportPlan plan;
  double seconds = 0;
};

// Plans, then (unless dry_run) writes. Progress and warnings go to `log`. bad_input for missing
// or mismatched inputs, an existing output without force, and anything a runtime would reject.
ExportResult run_export(const ExportOptions& options, std::ostream& log);

// The plan as a table for --dry-run.
std::string describe_plan(const ExportPlan& plan, const ExportOptions& options);

}  // namespace retort
