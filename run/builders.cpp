#include "run/builders.h"

#include <ATen/ATen.h>

#include <filesystem>
#include <fstream>
#include <iostream>

#include "export/export.h"
#include "io/hub_cache.h"
#include "io/error.h"
#include "io/text.h"
#include "models/family.h"
#include "tokenizer/chat_template.h"

namespace retort::run {
namespace fs = std::filesystem;

RunData::RunData(const Recipe& recipe)
    : text(data::load_recipe_text(recipe)),
      encoder(*text.tokenizer, text.template_or_null(), data::encode_options(recipe.data)),
      pipeline(data::format_options(recipe.data), encoder),
      prepared(data::prepare_data(recipe.data, pipeline, static_cast<uint64_t>(recipe.training.seed))) {}

TokenId RunData::pad_id() const { return text.tokenizer->pad_id().value_or(text.tokenizer->eos_id().value_or(0)); }

RunLoaders build_loaders(const Recipe& recipe, const RunData& data) {
  const data::PreparedData& prepared = data.prepared;
  data::LoaderOptions options;
  options.batch_size = recipe.training.micro_batch_size;
  options.packing = recipe.data.packing;
  options.row_length = recipe.data.max_seq_len;
  options.pad_to_multiple = recipe.data.pad_to_multiple;
  options.seed = static_cast<uint64_t>(recipe.training.seed);
  options.epochs = recipe.training.max_steps > 0 ? 0 : recipe.training.epochs;
  options.pad_id = data.pad_id();
  RunLoaders loaders;
  loaders.train = std::make_unique<data::DataLoader>(prepared.train.source, data.pipeline, prepared.train.scan.sequences,
                                                     options);
  if (prepared.validation && !prepared.validation->scan.sequences.empty()) {
    data::LoaderOptions validation = options;
    validation.shuffle = false;
    validation.epochs = 1;
    validation.first_sequence_id = static_cast<int64_t>(prepared.train.scan.sequences.size());  // a cache's numbering
    loaders.validation = std::make_unique<data::DataLoader>(prepared.validation->source, data.pipeline,
                                                            prepared.validation->scan.sequences, validation);
  }
  const int64_t accumulation = recipe.training.gradient_accumulation;
  loaders.total_steps = recipe.training.max_steps > 0
                            ? recipe.training.max_steps
                            : (loaders.train->batches_per_epoch() * recipe.training.epochs + accumulation - 1) /
                                  accumulation;
  return loaders;
}

TrainedModel build_model(const Recipe& recipe, const Info& info) {
  TrainedModel trained;
  trained.path = resolve_model_path(recipe.model.path, "model.path");
  const uint64_t seed = static_cast<uint64_t>(recipe.training.seed);
  // The seed fixes the adapters' init and LoRA dropout.
  at::manual_seed(seed);
  LoadOptions load;
  load.dtype = parse_dtype(recipe.training.precision);
  if (load.dtype != at::kFloat) {
    info("precision: " + recipe.training.precision + " weights and activations; LoRA adapters, optimizer state and " +
         "master weights in float32" + (load.dtype == at::kHalf ? "; dynamic loss scaling" : ""));
  }
  load.device = parse_device(recipe.model.device);
  load.quantize = parse_base_quantization(recipe.model.quantize, "model.quantize");
  trained.loaded = load_model(trained.path, load);
  if (load.quantize != BaseQuantization::kNone) {
    int64_t bytes = 0;
    for (const auto& [name, projection] : decoder_projection_weights(trained.model())) bytes += projection->storage().bytes();
    info("base: decoder projections quantized in memory (model.quantize: " + recipe.model.quantize + "), " + std::to_string(bytes >> 20) +
         " MiB; embeddings, norms and the output head dense");
  }
  for (const std::string& format : recipe.exports.formats) {
    // Refused now rather than after training: a family without a GGUF form, or a model whose
    // GGUF metadata could not say how it runs (the family's writer refuses it).
    if (format == "gguf" || format == "gguf-lora") {
      try {
        gguf_architecture_metadata(trained.model().family(), trained.model().config());
      } catch (const Error& error) {
        const std::string where = error.context().key.empty() ? "" : " (" + error.context().key + ")";
        throw bad_input("the model cannot be exported as " + format + ": " + error.message() + where)
            .key("export.formats");
      }
    }
  }
  if (recipe.lora.enabled) {
    LoraSpec spec;
    spec.rank = recipe.lora.rank;
    spec.alpha = recipe.lora.alpha;
    spec.dropout = recipe.lora.dropout;
    spec.use_rslora = recipe.lora.use_rslora;
    spec.use_dora = recipe.lora.use_dora;
    const int64_t attached = attach_lora(trained.model(), spec, recipe.lora.target_modules, seed);
    info("LoRA: rank " + std::to_string(spec.rank) + " on " + std::to_string(attached) + " projections");
    trained.lora = spec;
  } else {
    info("full fine-tuning of every parameter");
  }
  trained.model().set_activation_checkpointing(recipe.training.activation_checkpointing);
  return trained;
}

TrainerOptions build_trainer_options(const Recipe& recipe, const std::string& recipe_yaml, int64_t total_steps) {
  TrainerOptions options;
  options.max_steps = total_steps;
  options.gradient_accumulation = recipe.training.gradient_accumulation;
  options.adamw.lr = recipe.optimizer.lr;
  options.adamw.beta1 = recipe.optimizer.beta1;
  options.adamw.beta2 = recipe.optimizer.beta2;
  options.adamw.eps = recipe.optimizer.eps;
  options.adamw.weight_decay = recipe.optimizer.weight_decay;
  options.schedule.kind = parse_schedule(recipe.scheduler.name);
  options.schedule.warmup_steps = recipe.scheduler.warmup_steps;
  options.schedule.total_steps = total_steps;
  options.schedule.min_lr_ratio = recipe.scheduler.min_lr_ratio;
  options.max_grad_norm = recipe.optimizer.max_grad_norm;
  options.max_seconds = recipe.training.max_minutes * 60.0;
  options.dynamic_loss_scaling = parse_dtype(recipe.training.precision) == at::kHalf;
  options.checkpoint.directory = recipe.checkpoint.output_dir;
  options.checkpoint.every_steps = recipe.checkpoint.every_steps;
  options.checkpoint.keep_last = recipe.checkpoint.keep_last;
  options.checkpoint.resume = recipe.checkpoint.resume;
  options.checkpoint.recipe_yaml = recipe_yaml;
  options.checkpoint.tensorboard = recipe.logging.tensorboard;
  options.eval_every_steps = recipe.training.eval_every_steps;
  return options;
}

void check_supported(const Recipe& recipe) {
  if (recipe.model.dtype != "float32" && recipe.model.dtype != recipe.training.precision) {
    throw bad_input("training loads the model in training.precision (" + recipe.training.precision + "), not " +
                    recipe.model.dtype)
        .key("model.dtype");
  }
  if (recipe.optimizer.name != "adamw") throw bad_input("only adamw is available").key("optimizer.name");
  for (const std::string& format : recipe.exports.formats) {
    if ((format == "peft" || format == "gguf-lora") && !recipe.lora.enabled) {
      throw bad_input("a " + format + " export needs lora.enabled").key("export.formats");
    }
  }
}

void prepare_output_dir(const Recipe& recipe) {
  const CheckpointSection& checkpoint = recipe.checkpoint;
  const std::string& dir = checkpoint.output_dir;
  if (dir.empty()) throw bad_input("no output directory").key("checkpoint.output_dir");
  std::error_code ec;
  fs::create_directories(dir, ec);
  const fs::path probe = fs::path(dir) / ".write-test";
  {
    std::ofstream out(probe);
    if (ec || !out || !(out << "ok") || !out.flush()) {
      throw bad_input("the output directory cannot be written" + (ec ? ": " + ec.message() : std::string()))
          .file(dir)
          .key("checkpoint.output_dir");
    }
  }
  fs::remove(probe, ec);
  if (!checkpoint.resume && !list_checkpoints(dir).empty()) {
    throw bad_input("the output directory already holds checkpoints and checkpoint.resume is false; choose another "
                    "directory or remove them")
        .file(dir)
        .key("checkpoint.resume");
  }
  const std::string model_path = resolve_model_path(recipe.model.path, "model.path");
  if (model_path.empty()) throw bad_input("no model: set model.path").key("model.path");
  if (!fs::exists(model_path)) throw bad_input("the model path does not exist").file(model_path).key("model.path");
}

// A built-in template name for another format has no Jinja source here, and a model that answers
// in one format while its files announce another would be garbled by every runtime, so that is
// refused before training starts.
std::string export_chat_template(const Recipe& recipe, const std::string& model_path) {
  const bool exports_files = std::any_of(recipe.exports.formats.begin(), recipe.exports.formats.end(),
                                         [](const std::string& format) { return format != "peft"; });
  const std::string& chosen = recipe.tokenizer.chat_template;
  if (!exports_files || chosen.empty()) return "";
  if (fs::exists(expand_home(chosen))) return expand_home(chosen);
  std::optional<std::string> own;
  try {
    own = chat::detect_chat_template_name(chat::load_chat_template_source(model_path));
  } catch (const Error&) {
  }
  if (own && *own == chosen) return "";
  throw bad_input("exporting " + recipe.exports.formats.front() + " stores the chat template as Jinja, but '" + chosen +
                  "' is a built-in name, not the model's own template; give tokenizer.chat_template as a .jinja "
                  "file (or drop the export)")
      .key("tokenizer.chat_template");
}

std::string write_run_exports(const Recipe& recipe, const TrainedModel& trained, const std::string& chat_template) {
  std::string adapter_dir;
  if (trained.lora) {  // the adapter is small: always written, export peft or not
    adapter_dir = (fs::path(recipe.checkpoint.output_dir) / "adapter").string();
    write_peft_adapter(trained.model(), *trained.lora, recipe.lora.target_modules, trained.path, adapter_dir);
  }
  const fs::path dir = fs::path(recipe.checkpoint.output_dir) / "export";
  const std::string stem = recipe.name.empty() ? "model" : recipe.name;
  for (const std::string& format : recipe.exports.formats) {
    if (format == "peft") continue;  // the adapter directory itself
    ExportOptions options;
    options.model_path = trained.path;
    options.format = parse_export_format(format);
    options.adapter_path = adapter_dir;
    if (!trained.lora) options.trained_model = trained.loaded.model;
    if (recipe.exports.merge_into == "dequantized") {
      options.trained_on = parse_base_quantization(recipe.model.quantize, "model.quantize");
      options.trained_dtype = parse_dtype(recipe.training.precision);
    }
    options.force = true;
    options.chat_template = chat_template;
    options.system_prompt = recipe.data.system_prompt;
    options.model_name = stem;
    if (options.format == ExportFormat::kGguf) {
      options.quant = recipe.exports.quant;
      options.out = (dir / (stem + "-" + recipe.exports.quant + ".gguf")).string();
    } else if (options.format == ExportFormat::kHf) {
      options.out = (dir / "hf").string();
    } else {
      options.out = (dir / (stem + "-lora.gguf")).string();
    }
    run_export(options, std::cerr);
  }
  return adapter_dir;
}

}  // namespace retort::run
