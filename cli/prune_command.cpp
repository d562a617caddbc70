#include "cli/prune_command.h"

#include <iostream>

#include "cli/model_commands.h"
#include "distill/prune.h"
#include "export/export.h"
#include "io/error.h"
#include "models/loader.h"

namespace retort::cli {
namespace {

int run_prune(const ParsedArgs& args) {
  const auto model_arg = args.get("model");
  if (!model_arg) throw bad_input("retort prune needs --model TEACHER").key("model");
  const std::string model_path = *model_arg;
  const auto out = args.get("out");
  if (!out) throw bad_input("retort prune needs --out DIR").key("out");
  LoadedModel source = load_model(model_path);
  const ModelConfig& config = source.model->config();
  PruneOptions options;
  if (const auto layers = args.get("keep-layers")) options.keep_layers = parse_layer_list(*layers, config.num_hidden_layers);
  const int64_t depth = args.get_int("depth", 0);
  if (depth != 0 && args.has("keep-layers")) throw bad_input("give --keep-layers or --depth, not both").key("depth");
  options.mlp_width = args.get_int("mlp-width", 0);
  if (options.mlp_width < 0) throw bad_input("must be positive").key("mlp-width");
  if (options.keep_layers.empty() && depth == 0 && options.mlp_width == 0) {
    throw bad_input("nothing to prune: give --keep-layers or --depth, and/or --mlp-width");
  }
  std::vector<std::vector<int64_t>> calibration;
  if (depth != 0 || options.mlp_width > 0) {
    const auto calibration_path = args.get("calibration");
    if (!calibration_path) {
      throw bad_input("--depth and --mlp-width rank layers and neurons on --calibration FILE.jsonl").key("calibration");
    }
    const int64_t max_tokens = args.get_int("calibration-tokens", 512);
    data::for_each_token_sequence(*calibration_path, model_tokenizer(model_path), config.vocab_size,
                                  [&](std::vector<int64_t> ids) {
      if (static_cast<int64_t>(ids.size()) > max_tokens) ids.resize(static_cast<size_t>(max_tokens));
      if (!ids.empty()) calibration.push_back(std::move(ids));
    });
    std::cerr << "calibration: " << calibration.size() << " sequences\n";
  }
  if (depth != 0) {
    const std::vector<double> importance = layer_importance(*source.model, calibration);
    options.keep_layers = most_important_layers(importance, depth);
    std::cerr << "layer importance (1 - cos(in, out)):";
    for (size_t layer = 0; layer < importance.size(); ++layer) std::cerr << " " << layer << ":" << importance[layer];
    std::cerr << "\nkept layers:";
    for (int64_t layer : options.keep_layers) std::cerr << " " << layer;
    std::cerr << "\n";
  }
  std::vector<at::Tensor> importance;
  if (options.mlp_width > 0) importance = mlp_neuron_importance(*source.model, calibration);
  ExportOptions export_options;
  export_options.model_path = model_path;
  export_options.format = ExportFormat::kHf;
  export_options.out = *out;
  export_options.force = args.has("force");
  export_options.quant = args.get_or("dtype", "");
  export_options.trained_model = prune_model(*source.model, options, importance);
  const ModelConfig& pruned = export_options.trained_model->config();
  std::cerr << "pruned: " << pruned.num_hidden_layers << " of " << config.num_hidden_layers << " layers, MLP width "
            << pruned.intermediate_size << " of " << config.intermediate_size << "\n";
  run_export(export_options, std::cerr);
  return 0;
}

}  // namespace

CommandSpec prune_command() {
  return {"prune",
          "Initialise a student from a teacher: keep some of its layers, optionally narrow its MLPs by importance.",
          "retort prune --model TEACHER (--keep-layers 0-5,11 | --depth N) [--mlp-width N] [--calibration FILE.jsonl] --out DIR",
          {{"model", "PATH", "the teacher: HF model directory, .gguf file or cached Hugging Face id"},
           {"keep-layers", "LIST", "decoder layers kept, in order: indices and ranges like 0-5,9,11 (default: all)"},
           {"depth", "N", "keep the N layers that turn the residual stream most on the calibration text (block importance)"},
           {"mlp-width", "N", "neurons kept in every MLP, the most active on the calibration text (default: all)"},
           {"calibration", "FILE", "JSONL of {\"text\": ...} or {\"ids\": [...]} for --depth and --mlp-width"},
           {"calibration-tokens", "N", "tokens read from each calibration line (default 512)"},
           {"dtype", "TYPE", "checkpoint dtype: f32, f16 or bf16 (default: the teacher's)"},
           {"out", "DIR", "the student's HF checkpoint (config, safetensors, tokenizer)"},
           {"force", "", "replace an existing --out"}},
          0,
          0,
          run_prune};
}

}  // namespace retort::cli
