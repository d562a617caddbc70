#include "run/run.h"

#include <filesystem>

#include "io/hub_cache.h"
#include "io/stop_signal.h"
#include "io/text.h"
#include "models/loader.h"
#include "run/builders.h"
#include "run/method.h"
#include "tokenizer/chat_template.h"

namespace retort::run {
namespace fs = std::filesystem;
namespace {

void report_data(const Recipe& recipe, const RunData& data, const Info& info) {
  const chat::ChatTemplate* chat_template = data.text.template_or_null();
  const data::PreparedData& prepared = data.prepared;
  info("data: " + recipe.data.train + (chat_template ? " (template " + chat_template->name() + ")" : std::string()));
  info(data::describe_stats(prepared.train.scan.stats, prepared.train.scan.sequences, recipe.data.max_seq_len));
  if (prepared.validation) {
    info("validation: " + prepared.validation->source->path());
    info(data::describe_stats(prepared.validation->scan.stats, prepared.validation->scan.sequences,
                              recipe.data.max_seq_len));
  }
}

// Runs the loop to its end or a stop. Signals stop the loop at a step boundary while it runs; a
// signal during loading or export ends the process as usual (nothing is lost there: the last
// checkpoint stays resumable).
RunOutcome train(const Recipe& recipe, TrainingStep& step, const RunLoaders& loaders, TrainerOptions options,
                 const RunEvents& events) {
  options.validation = loaders.validation.get();
  std::optional<StopSignals> stop_signals;
  if (recipe.checkpoint.on_signal) {
    stop_signals.emplace();
    options.stop_requested = &StopSignals::pending;
  }
  Trainer trainer(step, *loaders.train, options);
  const int64_t total_steps = loaders.total_steps;
  const std::vector<StepMetrics> history = trainer.run([&](const StepMetrics& metrics) {
    if (events.on_step) events.on_step(metrics, total_steps);
  });
  RunOutcome outcome;
  outcome.steps = trainer.completed_steps();
  outcome.total_steps = total_steps;
  outcome.stop_reason = trainer.stop_reason();
  outcome.stop_signal = trainer.stop_signal() != 0 ? trainer.stop_signal() : StopSignals::pending();
  outcome.output_dir = recipe.checkpoint.output_dir;
  if (const auto saved = list_checkpoints(recipe.checkpoint.output_dir); !saved.empty()) {
    outcome.checkpoint_dir = saved.back();
  }
  for (const StepMetrics& metrics : history) {
    if (metrics.val_loss) outcome.val_loss = metrics.val_loss;
  }
  // A signal that came after the last step (while the final checkpoint was written) still counts.
  if (outcome.stop_signal != 0 && outcome.stop_reason == StopReason::kMaxSteps) outcome.stop_reason = StopReason::kSignal;
  return outcome;  // stop_signals ends here: from now on (adapter, exports) a signal has its usual effect
}

}  // namespace

RunOutcome run_recipe(const Recipe& recipe, const std::string& recipe_yaml, const RunEvents& events) {
  const Info info = [&](const std::string& line) {
    if (events.info) events.info(line);
  };
  check_supported(recipe);
  const TrainingMethod& method = resolve_method(recipe);
  prepare_output_dir(recipe);
  const std::string export_template = export_chat_template(recipe, resolve_model_path(recipe.model.path, "model.path"));

  const RunData data(recipe);
  report_data(recipe, data, info);
  const RunLoaders loaders = build_loaders(recipe, data);
  TrainedModel trained = build_model(recipe, info);
  // The method swaps the step, nothing else: same loop, data, checkpoints and exports.
  const MethodStep step = method.build_step(MethodContext{recipe, data, trained, info});
  int64_t trainable = 0;
  for (const auto& [name, tensor] : step.step->named_trainable_parameters()) trainable += tensor.numel();
  info("trainable parameters: " + std::to_string(trainable));
  if (const auto existing = list_checkpoints(recipe.checkpoint.output_dir); !existing.empty()) {
    info("resuming from " + existing.back());
  }
  RunOutcome outcome =
      train(recipe, *step.step, loaders, build_trainer_options(recipe, recipe_yaml, loaders.total_steps), events);
  if (outcome.stop_signal != 0) return outcome;  // the adapter and exports come when a rerun finishes the steps
  outcome.adapter_dir = write_run_exports(recipe, trained, export_template);
  return outcome;
}

}  // namespace retort::run
