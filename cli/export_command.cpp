#include "cli/export_command.h"

#include <iostream>

#include "export/export.h"
#include "io/error.h"
#include "models/loader.h"

namespace retort::cli {
namespace {

int run_export_command(const ParsedArgs& args) {
  ExportOptions options;
  options.model_path = args.get_or("model", "");
  options.adapter_path = args.get_or("adapter", "");
  if (!args.has("format")) throw bad_input("--format is required (hf, peft, gguf, gguf-lora)").key("format");
  options.format = parse_export_format(*args.get("format"));
  options.quant = args.get_or("quant", "");
  options.out = args.get_or("out", "");
  options.dry_run = args.has("dry-run");
  options.force = args.has("force");
  options.chat_template = args.get_or("chat-template", "");
  options.system_prompt = args.get_or("system-prompt", "");
  options.model_name = args.get_or("name", "");
  options.modelfile = !args.has("no-modelfile");
  options.allow_dora = args.has("allow-dora");
  options.trained_on = parse_base_quantization(args.get_or("quantize", "none"), "--quantize");
  options.trained_dtype = parse_dtype(args.get_or("dtype", "float32"));
  if (args.has("max-shard-size")) {
    const int64_t megabytes = args.get_int("max-shard-size", 5000);
    if (megabytes <= 0) throw bad_input("--max-shard-size must be positive (MB)").key("max-shard-size");
    options.max_shard_bytes = static_cast<uint64_t>(megabytes) * 1'000'000;
  }
  const ExportResult result = run_export(options, std::cerr);
  if (options.dry_run) {
    std::cout << describe_plan(result.plan, options);
  } else {
    std::cerr << "export took " << result.seconds << " s\n";
  }
  return 0;
}

}  // namespace

CommandSpec export_command() {
  return {"export",
          "Export to HF safetensors, a PEFT adapter, GGUF or a GGUF LoRA adapter.",
          "retort export --model M [--adapter A] --format hf|peft|gguf|gguf-lora --out PATH [options]",
          {{"model", "PATH", "base model: HF directory, .gguf or cached Hugging Face id (org/name)"},
           {"adapter", "DIR", "PEFT LoRA adapter (merged for hf and gguf; required for peft and gguf-lora)"},
           {"format", "hf|peft|gguf|gguf-lora", "what to write"},
           {"quant", "TYPE", "gguf: f32|f16|bf16|q8_0|q4_0|q4_k_m|q5_k_m|q6_k (default f16); gguf-lora: f32|f16|bf16|q8_0 "
                             "(default f32); hf: f32|f16|bf16 (default: the source dtype)"},
           {"out", "PATH", "output directory (hf, peft) or .gguf file"},
           {"dry-run", "", "print the plan (tensors, types, sizes) and write nothing"},
           {"force", "", "replace an existing output"},
           {"chat-template", "PATH", "Jinja template to store (.jinja, tokenizer_config.json, model dir or .gguf); "
                                     "default: the model's own"},
           {"system-prompt", "TEXT", "the Ollama Modelfile's SYSTEM (gguf)"},
           {"no-modelfile", "", "gguf: do not write an Ollama Modelfile beside the file"},
           {"allow-dora", "", "peft: write a DoRA adapter although vLLM and llama.cpp reject its magnitude vectors"},
           {"name", "TEXT", "general.name in GGUF (default: from the paths)"},
           {"max-shard-size", "MB", "hf: largest safetensors shard (default 5000)"},
           {"quantize", "Q", "hf/gguf: the adapter was trained on a base kept int8 or nf4: merge it into that base "
                             "as trained (quantized, then dequantized) instead of the checkpoint's own weights"},
           {"dtype", "TYPE", "with --quantize: the precision the adapter trained in (default float32)"}},
          0,
          0,
          run_export_command};
}

}  // namespace retort::cli
