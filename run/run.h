// `retort run`: a recipe becomes a model (with fresh LoRA adapters or fully trainable), a
// tokenizer and chat template, scanned train/validation data and loaders, the step of its method
// (run/method.h), and one Trainer run that resumes from the output directory's newest checkpoint;
// then the adapter and exports. `retort cache-teacher` is assembled from the same builders.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "distill/cache_run.h"
#include "recipe/recipe.h"
#include "train/trainer.h"

namespace retort::run {

struct RunEvents {
  std::function<void(const std::string&)> info;                           // one-off lines
  std::function<void(const StepMetrics&, int64_t total_steps)> on_step;  // every optimizer step
};

struct RunOutcome {
  int64_t steps = 0;
  int64_t total_steps = 0;
  StopReason stop_reason = StopReason::kMaxSteps;
  int stop_signal = 0;  // the signal that stopped the run (no adapter or export written), or 0
  std::string output_dir;
  std::string checkpoint_dir;  // the checkpoint of the last completed step (empty: none yet)
  std::string adapter_dir;  // LoRA: the PEFT adapter written at the end
  std::optional<double> val_loss;
};

// `recipe_yaml`: the resolved recipe, stored with every checkpoint.
RunOutcome run_recipe(const Recipe& recipe, const std::string& recipe_yaml, const RunEvents& events);

// `retort cache-teacher`: the recipe's teacher over its train and validation data into
// distill.teacher_cache (distill/cache_run.h).
CacheOutcome run_cache_teacher(const Recipe& recipe, const CacheEvents& events);

}  // namespace retort::run
