// run_export: checks the request, loads the model (and adapter), plans, and runs one writer.
#include "export/export.h"

#include <ATen/ATen.h>

#include <chrono>
#include <filesystem>
#include <iomanip>
#include <ostream>
#include <sstream>

#include "export/writers.h"
#include "io/atomic_file.h"
#include "io/error.h"
#include "io/gguf.h"
#include "lora/lora.h"
#include "models/family.h"
#include "models/loader.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace retort {
namespace {

namespace fs = std::filesystem;

constexpr std::pair<const char*, ExportFormat> kFormats[] = {
    {"hf", ExportFormat::kHf}, {"peft", ExportFormat::kPeft}, {"gguf", ExportFormat::kGguf},
    {"gguf-lora", ExportFormat::kGgufLora}};

bool is_gguf_path(const std::string& path) { return fs::path(path).extension() == ".gguf"; }

// The Jinja template to store: --chat-template (a .jinja file, a tokenizer_config.json, a model
// directory or .gguf), else the model's own, else its family's format (a base model is chatted
// with, and fine-tuned, in it: data/, `retort chat`), else none.
std::optional<std::string> chosen_chat_template(const ExportOptions& options) {
  if (!options.chat_template.empty()) return chat::load_chat_template_source(options.chat_template);
  try {
    return chat::load_chat_template_source(options.model_path);
  } catch (const Error&) {
    const std::string family_template = family_chat_template_of(options.model_path);
    if (family_template.empty()) return std::nullopt;
    return chat::ChatTemplate::by_name(family_template).jinja_source();
  }
}

void check_request(const ExportOptions& options) {
  if (options.model_path.empty()) throw bad_input("--model is required").key("model");
  if (options.out.empty()) throw bad_input("--out is required").key("out");
  if (!fs::exists(options.model_path)) throw bad_input("model not found").file(options.model_path);
  const bool needs_adapter = options.format == ExportFormat::kPeft || options.format == ExportFormat::kGgufLora;
  if (needs_adapter && options.adapter_path.empty()) {
    throw bad_input(export_format_name(options.format) + " export needs --adapter (a PEFT LoRA adapter directory)")
        .key("adapter");
  }
  if (!options.adapter_path.empty() && !fs::is_directory(options.adapter_path)) {
    throw bad_input("adapter directory not found").file(options.adapter_path);
  }
  const bool file_output = options.format == ExportFormat::kGguf || options.format == ExportFormat::kGgufLora;
  if (file_output && !is_gguf_path(options.out)) {
    throw bad_input("a GGUF export is a file; name it *.gguf").file(options.out);
  }
  if (options.format == ExportFormat::kGguf || options.format == ExportFormat::kGgufLora) {
    if (!options.quant.empty()) parse_quant_scheme(options.quant);
  } else if (!options.quant.empty()) {
    if (options.format == ExportFormat::kPeft) throw bad_input("PEFT adapters are written in float32; drop --quant").key("quant");
    const std::string q = options.quant;
    if (q != "f32" && q != "f16" && q != "bf16" && q != "float32" && q != "float16" && q != "bfloat16") {
      throw bad_input("unknown dtype '" + q + "' for an HF export; valid: f32, f16, bf16").key("quant");
    }
  }
  if (!options.dry_run && fs::exists(options.out) && !options.force) {
    throw bad_input("the output already exists; pass --force to replace it").file(options.out);
  }
}

std::string default_model_name(const ExportOptions& options) {
  if (!options.model_name.empty()) return options.model_name;
  fs::path path = fs::path(options.model_path);
  if (path.filename().empty()) path = path.parent_path();
  std::string name = path.stem().string();
  if (!options.adapter_path.empty()) {
    fs::path adapter(options.adapter_path);
    if (adapter.filename().empty()) adapter = adapter.parent_path();
    name += "+" + (adapter.filename() == "adapter" ? adapter.parent_path().filename() : adapter.filename()).string();
  }
  return name;
}

std::string human_bytes(uint64_t bytes) {
  std::ostringstream out;
  out << std::fixed << std::setprecision(bytes >= 10'000'000 ? 0 : 2) << bytes / 1e6 << " MB";
  return out.str();
}

std::string dims_text(const std::vector<int64_t>& dims) {
  std::string text = "[";
  for (size_t i = 0; i < dims.size(); ++i) text += (i ? ", " : "") + std::to_string(dims[i]);
  return text + "]";
}

}  // namespace

ExportFormat parse_export_format(const std::string& name) {
  for (const auto& [text, format] : kFormats) {
    if (name == text) return format;
  }
  throw bad_input("unknown export format '" + name + "'; valid: hf, peft, gguf, gguf-lora").key("format");
}

std::string export_format_name(ExportFormat format) {
  for (const auto& [text, value] : kFormats) {
    if (value == format) return text;
  }
  return "?";
}

std::string describe_plan(const ExportPlan& plan, const ExportOptions& options) {
  std::ostringstream out;
  out << "export " << export_format_name(options.format) << " -> " << options.out << "\n";
  out << "files:";
  for (const std::string& file : plan.files) out << " " << file;
  out << "\n";
  size_t name_width = 4;
  for (const PlannedTensor& tensor : plan.tensors) name_width = std::max(name_width, tensor.name.size());
  out << std::left << std::setw(static_cast<int>(name_width)) << "name" << "  " << std::setw(6) << "type"
      << "  " << std::setw(22) << "shape" << "  size\n";
  for (const PlannedTensor& tensor : plan.tensors) {
    out << std::setw(static_cast<int>(name_width)) << tensor.name << "  " << std::setw(6) << tensor.type << "  "
        << std::setw(22) << dims_text(tensor.shape) << "  " << human_bytes(tensor.bytes);
    if (!tensor.note.empty()) out << "  (" << tensor.note << ")";
    out << "\n";
  }
  out << plan.tensors.size() << " tensors, " << human_bytes(plan.total_bytes) << " of tensor data\n";
  return out.str();
}

ExportResult run_export(const ExportOptions& options, std::ostream& log) {
  const auto start = std::chrono::steady_clock::now();
  check_request(options);
  // Weights stream from the file one tensor at a time (the model itself is a skeleton that takes
  // no memory), unless they are already in memory (full fine-tuning's result).
  std::shared_ptr<CausalLM> model;
  std::function<at::Tensor(const std::string&)> raw;
  if (options.trained_model) {
    model = options.trained_model;
    model->to(at::kCPU, at::kFloat);
    raw = [model](const std::string& name) { return model->named_parameters()[name].detach(); };
  } else {
    LazyModel lazy = open_model_lazily(options.model_path);
    model = lazy.skeleton;
    raw = lazy.load;
  }
  ExportContext context{options, model, raw, std::nullopt, nullptr, chosen_chat_template(options),
                        default_model_name(options)};
  if (is_gguf_path(options.model_path)) context.source_gguf = GgufFile::open(options.model_path);
  if (!options.adapter_path.empty()) {
    context.adapter = load_peft_adapter(*model, options.adapter_path);
    // Full-model formats carry the adapter folded into each weight as it is written.
    if (options.format == ExportFormat::kHf || options.format == ExportFormat::kGguf) {
      const auto projections = projections_of(*model);
      const auto quantized = decoder_projection_weights(*model);
      const BaseQuantization trained_on = options.trained_on;
      const at::ScalarType trained_dtype = options.trained_dtype;
      context.weight = [raw, projections, quantized, trained_on, trained_dtype](const std::string& name) {
        at::Tensor value = raw(name).to(at::kFloat);
        if (!name.ends_with(".weight")) return value;
        if (quantized.count(name)) value = as_quantized_base(value, trained_on, trained_dtype);
        const auto it = projections.find(name.substr(0, name.size() - std::string(".weight").size()));
        const auto* lora = it == projections.end() ? nullptr : dynamic_cast<const LoraAdapter*>(it->second->adapter.get());
        return lora == nullptr ? value : value + lora->merged_delta(value);
      };
    }
  }
  at::NoGradGuard no_grad;
  ExportPlan (*writer)(const ExportContext&, bool, std::ostream&) = nullptr;
  switch (options.format) {
    case ExportFormat::kHf: writer = export_hf_model; break;
    case ExportFormat::kPeft: writer = export_peft_adapter; break;
    case ExportFormat::kGguf: writer = export_gguf_model; break;
    case ExportFormat::kGgufLora: writer = export_gguf_lora; break;
  }
  ExportResult result;
  result.plan = writer(context, false, log);
  for (const std::string& warning : result.plan.warnings) log << "warning: " << warning << "\n";
  if (!options.dry_run) {
    if (options.force && fs::exists(options.out) && !fs::is_directory(options.out) &&
        options.format != ExportFormat::kGguf && options.format != ExportFormat::kGgufLora) {
      throw bad_input("the output exists and is not a directory").file(options.out);
    }
    if (!fs::path(options.out).parent_path().empty()) fs::create_directories(fs::path(options.out).parent_path());
    // The Modelfile is made first so a template it cannot translate is reported before writing.
    std::optional<std::string> modelfile;
    if (options.format == ExportFormat::kGguf && options.modelfile) {
      try {
        modelfile = ollama_modelfile(fs::path(options.out).filename().string(), context.chat_template.value_or(""),
                                     options.system_prompt, *load_tokenizer(options.model_path));
      } catch (const Error& error) {
        log << "warning: no Ollama Modelfile: " << error.message() << "\n";
      }
    }
    writer(context, true, log);
    if (modelfile) {
      write_file_atomic(options.out + ".Modelfile", *modelfile);
      log << "wrote " << options.out << ".Modelfile (ollama create NAME -f " << options.out << ".Modelfile)\n";
    }
  }
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

}  // namespace retort
