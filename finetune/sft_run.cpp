#include "finetune/sft_run.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <iostream>
#include <filesystem>
#include <fstream>
#include <optional>

#include "data/dataset.h"
#include "distill/cache_run.h"
#include "distill/kd_step.h"
#include "distill/vocabulary.h"
#include "export/export.h"
#include "finetune/sft_step.h"
#include "io/error.h"
#include "io/stop_signal.h"
#include "io/text.h"
#include "lora/lora.h"
#include "models/loader.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace retort {
namespace fs = std::filesystem;

namespace {

// What this build trains with; everything else in the recipe is refused by name, not ignored.
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

// The Jinja template an export stores: tokenizer.chat_template when it is a file, the model's own
// when the recipe names the model's own format. A built-in name for another format has no Jinja
// source here, and a model that answers in one format while its files announce another would
// be garbled by every runtime, so that is refused before training starts.
std::string export_chat_template(const Recipe& recipe, const std::string& model_path) {
  const std::string& chosen = recipe.tokenizer.chat_template;
  if (chosen.empty() || fs::exists(expand_home(chosen))) return chosen.empty() ? "" : expand_home(chosen);
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

// hf, gguf and gguf-lora exports into OUTPUT_DIR/export when the run ends (peft is the adapter
// directory itself): from the base model plus the adapter just written, or the trained weights.
void export_after_run(const Recipe& recipe, const std::string& model_path, const std::string& adapter_dir,
                      const std::shared_ptr<CausalLM>& trained, const std::string& chat_template) {
  const fs::path dir = fs::path(recipe.checkpoint.output_dir) / "export";
  const std::string stem = recipe.name.empty() ? "model" : recipe.name;
  for (const std::string& format : recipe.exports.formats) {
    if (format == "peft") continue;
    ExportOptions options;
    options.model_path = model_path;
    options.format = parse_export_format(format);
    options.adapter_path = recipe.lora.enabled ? adapter_dir : "";
    if (!recipe.lora.enabled) options.trained_model = trained;
    options.force = true;
    options.chat_template = chat_template;
    options.system_prompt = recipe.data.system_prompt;
    options.model_name = stem;
    if (format == "hf") {
      options.out = (dir / "hf").string();
    } else if (format == "gguf") {
      options.quant = recipe.exports.quant;
      options.out = (dir / (stem + "-" + recipe.exports.quant + ".gguf")).string();
    } else {
      options.out = (dir / (stem + "-lora.gguf")).string();
    }
    run_export(options, std::cerr);
  }
}

// The output directory exists, is writable, and either holds no checkpoint or may be resumed.
void prepare_output_dir(const CheckpointSection& checkpoint) {
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
}

AdamWOptions adamw_options(const OptimizerSection& o) {
  AdamWOptions options;
  options.lr = o.lr;
  options.beta1 = o.beta1;
  options.beta2 = o.beta2;
  options.eps = o.eps;
  options.weight_decay = o.weight_decay;
  return options;
}

}  // namespace

RunOutcome run_finetune(const Recipe& recipe, const std::string& recipe_yaml, const RunEvents& events) {
  auto info = [&](const std::string& line) {
    if (events.info) events.info(line);
  };
  check_supported(recipe);
  prepare_output_dir(recipe.checkpoint);
  const std::string model_path = expand_home(recipe.model.path);
  if (model_path.empty()) throw bad_input("no model: set model.path").key("model.path");
  if (!fs::exists(model_path)) throw bad_input("the model path does not exist").file(model_path).key("model.path");
  const bool exports_files = std::any_of(recipe.exports.formats.begin(), recipe.exports.formats.end(),
                                         [](const std::string& format) { return format != "peft"; });
  const std::string export_template = exports_files ? export_chat_template(recipe, model_path) : "";

  const data::RecipeText text = data::load_recipe_text(recipe);
  const Tokenizer* tokenizer = text.tokenizer.get();
  const chat::ChatTemplate* chat_template = text.template_or_null();
  const data::ExampleEncoder encoder(*tokenizer, chat_template, data::encode_options(recipe.data));
  const data::DataPipeline pipeline(data::format_options(recipe.data), encoder);
  const uint64_t seed = static_cast<uint64_t>(recipe.training.seed);
  const data::PreparedData prepared = data::prepare_data(recipe.data, pipeline, seed);
  info("data: " + recipe.data.train + (chat_template ? " (template " + chat_template->name() + ")" : std::string()));
  info(data::describe_stats(prepared.train.scan.stats, prepared.train.scan.sequences, recipe.data.max_seq_len));
  if (prepared.validation) {
    info("validation: " + prepared.validation->source->path());
    info(data::describe_stats(prepared.validation->scan.stats, prepared.validation->scan.sequences,
                              recipe.data.max_seq_len));
  }

  data::LoaderOptions loader_options;
  loader_options.batch_size = recipe.training.micro_batch_size;
  loader_options.packing = recipe.data.packing;
  loader_options.row_length = recipe.data.max_seq_len;
  loader_options.pad_to_multiple = recipe.data.pad_to_multiple;
  loader_options.seed = seed;
  loader_options.epochs = recipe.training.max_steps > 0 ? 0 : recipe.training.epochs;
  loader_options.pad_id = tokenizer->pad_id().value_or(tokenizer->eos_id().value_or(0));
  data::DataLoader train_loader(prepared.train.source, pipeline, prepared.train.scan.sequences, loader_options);
  std::optional<data::DataLoader> validation_loader;
  if (prepared.validation && !prepared.validation->scan.sequences.empty()) {
    data::LoaderOptions options = loader_options;
    options.shuffle = false;
    options.epochs = 1;
    options.first_sequence_id = static_cast<int64_t>(prepared.train.scan.sequences.size());  // a cache's numbering
    validation_loader.emplace(prepared.validation->source, pipeline, prepared.validation->scan.sequences, options);
  }
  const int64_t accumulation = recipe.training.gradient_accumulation;
  const int64_t total_steps = recipe.training.max_steps > 0
                                  ? recipe.training.max_steps
                                  : (train_loader.batches_per_epoch() * recipe.training.epochs + accumulation - 1) /
                                        accumulation;

  // The model, with fresh adapters for LoRA; seeds fix the adapters' init and LoRA dropout.
  at::manual_seed(seed);
  LoadOptions load;
  load.dtype = parse_dtype(recipe.training.precision);
  if (load.dtype != at::kFloat) {
    info("precision: " + recipe.training.precision + " weights and activations; LoRA adapters, optimizer state and " +
         "master weights in float32" + (load.dtype == at::kHalf ? "; dynamic loss scaling" : ""));
  }
  load.device = parse_device(recipe.model.device);
  LoadedModel loaded = load_model(model_path, load);
  LoraSpec spec;
  if (recipe.lora.enabled) {
    spec.rank = recipe.lora.rank;
    spec.alpha = recipe.lora.alpha;
    spec.dropout = recipe.lora.dropout;
    spec.use_rslora = recipe.lora.use_rslora;
    spec.use_dora = recipe.lora.use_dora;
    const int64_t attached = attach_lora(*loaded.model, spec, recipe.lora.target_modules, seed);
    info("LoRA: rank " + std::to_string(spec.rank) + " on " + std::to_string(attached) + " projections");
  } else {
    info("full fine-tuning of every parameter");
  }
  loaded.model->set_activation_checkpointing(recipe.training.activation_checkpointing);
  // Distillation swaps the step, nothing else: same loop, data, checkpoints and exports.
  LoadedModel teacher;
  std::unique_ptr<TrainingStep> step;
  KdStepOptions kd;
  kd.kd.divergence = parse_divergence(recipe.distill.loss);
  kd.kd.temperature = recipe.distill.temperature;
  kd.kd.beta = recipe.distill.beta;
  kd.kd.tail = parse_tail_mode(recipe.distill.tail);
  kd.alpha = recipe.distill.alpha;
  const std::string kd_summary = " (" + recipe.distill.loss + ", T " + std::to_string(recipe.distill.temperature) +
                                 ", alpha " + std::to_string(recipe.distill.alpha) + ")";
  if (!recipe.distill.teacher_cache.empty()) {  // offline: the cache stands in for the teacher
    const std::string cache_dir = expand_home(recipe.distill.teacher_cache);
    auto cache = TeacherCache::open(cache_dir);
    cache->check_matches(data_identity(recipe, text, prepared));
    kd.shared_vocab = cache->identity().vocab_size;
    if (loaded.model->config().vocab_size < kd.shared_vocab) {
      throw bad_input("the student's embedding has fewer rows than the cache's vocabulary").key("distill.teacher_cache");
    }
    info("distilling from the teacher cache " + cache_dir + " (" + cache->identity().teacher + ", top-" +
         std::to_string(cache->format().top_k) + ")" + kd_summary);
    step = std::make_unique<KdStep>(*loaded.model, cache, kd);
  } else if (!recipe.distill.teacher.empty()) {
    const std::string teacher_path = expand_home(recipe.distill.teacher);
    teacher = load_recipe_teacher(recipe);
    if (recipe.distill.teacher_quantize != "none") {
      info("teacher weights: " + recipe.distill.teacher_quantize + ", " +
           std::to_string(weight_bytes(*teacher.model) >> 20) + " MiB");
    }
    kd.shared_vocab = shared_vocabulary_size(*load_tokenizer(teacher_path), teacher.model->config().vocab_size,
                                             *tokenizer, loaded.model->config().vocab_size);
    info("distilling from " + teacher_path + kd_summary);
    step = std::make_unique<KdStep>(*loaded.model, *teacher.model, kd);
  } else {
    step = std::make_unique<SftStep>(*loaded.model);
  }
  int64_t trainable = 0;
  for (const auto& [name, tensor] : step->named_trainable_parameters()) trainable += tensor.numel();
  info("trainable parameters: " + std::to_string(trainable));

  TrainerOptions options;
  options.max_steps = total_steps;
  options.gradient_accumulation = accumulation;
  options.adamw = adamw_options(recipe.optimizer);
  options.schedule.name = recipe.scheduler.name;
  options.schedule.warmup_steps = recipe.scheduler.warmup_steps;
  options.schedule.total_steps = total_steps;
  options.schedule.min_lr_ratio = recipe.scheduler.min_lr_ratio;
  options.max_grad_norm = recipe.optimizer.max_grad_norm;
  options.max_seconds = recipe.training.max_minutes * 60.0;
  options.dynamic_loss_scaling = load.dtype == at::kHalf;
  options.checkpoint.directory = recipe.checkpoint.output_dir;
  options.checkpoint.every_steps = recipe.checkpoint.every_steps;
  options.checkpoint.keep_last = recipe.checkpoint.keep_last;
  options.checkpoint.resume = recipe.checkpoint.resume;
  options.checkpoint.recipe_yaml = recipe_yaml;
  options.checkpoint.tensorboard = recipe.logging.tensorboard;
  options.validation = validation_loader ? &*validation_loader : nullptr;
  options.eval_every_steps = recipe.training.eval_every_steps;
  const auto existing = list_checkpoints(recipe.checkpoint.output_dir);
  if (!existing.empty()) info("resuming from " + existing.back());

  // Signals stop the loop at a step boundary while it runs; a signal during loading or export
  // ends the process as usual (nothing is lost there: the last checkpoint stays resumable).
  std::optional<StopSignals> stop_signals;
  if (recipe.checkpoint.on_signal) {
    stop_signals.emplace();
    options.stop_requested = &StopSignals::pending;
  }
  Trainer trainer(*step, train_loader, options);
  const std::vector<StepMetrics> history =
      trainer.run([&](const StepMetrics& metrics) {
        if (events.on_step) events.on_step(metrics, total_steps);
      });
  RunOutcome outcome;
  outcome.steps = trainer.completed_steps();
  outcome.total_steps = total_steps;
  outcome.stop_reason = trainer.stop_reason();
  outcome.stop_signal = trainer.stop_signal() != 0 ? trainer.stop_signal() : StopSignals::pending();
  stop_signals.reset();  // from here on (adapter, exports) a signal has its usual effect
  outcome.output_dir = recipe.checkpoint.output_dir;
  if (const auto saved = list_checkpoints(recipe.checkpoint.output_dir); !saved.empty()) {
    outcome.checkpoint_dir = saved.back();
  }
  for (const StepMetrics& metrics : history) {
    if (metrics.val_loss) outcome.val_loss = metrics.val_loss;
  }
  if (outcome.stop_signal != 0) {
    if (outcome.stop_reason.empty() || outcome.stop_reason == "max_steps") outcome.stop_reason = signal_name(outcome.stop_signal);
    return outcome;  // the adapter and exports come when a rerun finishes the steps
  }
  if (recipe.lora.enabled) {  // the adapter is small: always written, export peft or not
    outcome.adapter_dir = (fs::path(recipe.checkpoint.output_dir) / "adapter").string();
    write_peft_adapter(*loaded.model, spec, recipe.lora.target_modules, model_path, outcome.adapter_dir);
  }
  export_after_run(recipe, model_path, outcome.adapter_dir, loaded.model, export_template);
  return outcome;
}

}  // namespace retort
