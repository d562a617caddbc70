// The one training loop shared by every method: micro-batches, gradient accumulation normalised
// over the whole window (by the step's normaliser: trained tokens for token losses), clipping,
// the optimizer, the schedule, and a NaN guard. What a step computes is pluggable (TrainingStep),
// so are the optimizer (Optimizer) and what the loop agrees on with other processes (Collective).
#pragma once

#include <ATen/core/Tensor.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "data/batch.h"
#include "train/collective.h"
#include "train/optimizer.h"
#include "train/step.h"

namespace retort {

// Where and how often the loop checkpoints; resume picks up the newest checkpoint there.
struct CheckpointOptions {
  std::string directory;    // empty: no checkpoints, no metrics file
  int64_t every_steps = 0;  // 0: only at the end
  int64_t keep_last = 2;
  bool resume = true;
  std::string recipe_yaml;  // stored with each checkpoint
  bool tensorboard = false;  // also write DIR/tensorboard/events.out.tfevents.*
};

struct TrainerOptions {
  int64_t max_steps = 1;
  int64_t gradient_accumulation = 1;
  AdamWOptions adamw;
  ScheduleOptions schedule;
  double max_grad_norm = 1.0;  // 0: no clipping
  double max_seconds = 0;      // wall-time limit (0: none); a checkpoint is written when it ends the run
  // float16 training: the loss is multiplied by a scale before backward and the gradients divided
  // by it; a step whose gradients overflow is skipped and halves the scale, and every
  // `loss_scale_growth_interval` good steps double it (torch.amp.GradScaler's rule).
  bool dynamic_loss_scaling = false;
  double initial_loss_scale = 65536.0;
  int64_t loss_scale_growth_interval = 2000;
  CheckpointOptions checkpoint;
  // Validation: the mean loss over all of `validation` every `eval_every_steps` and at the end.
  BatchSource* validation = nullptr;
  int64_t eval_every_steps = 0;
  // The optimizer over the step's named trainable parameters; unset: AdamW with `adamw`.
  std::function<std::unique_ptr<Optimizer>(NamedTensors)> make_optimizer;
  // Other processes of the run (null: this process alone). Rank 0 writes metrics and TensorBoard;
  // checkpoints are written by every rank that owns state and committed by rank 0.
  Collective* collective = nullptr;
  // Polled between micro-batches: a non-zero signal number stops the run at the next safe point.
  // A step whose optimizer update has not begun is abandoned (data position and random state put
  // back); the run then ends with a checkpoint of its last completed step.
  std::function<int()> stop_requested;
};

// Why a run ended: its steps were done, the data ran out (epochs), training.max_minutes, or a
// signal (SIGINT, SIGTERM, SIGUSR1).
enum class StopReason { kMaxSteps, kData, kTime, kSignal };
// "max_steps" | "data" | "time" | the signal's name ("SIGTERM"), as metrics.jsonl notes it.
std::string stop_reason_name(StopReason reason, int signal_number);

struct StepMetrics {
  int64_t step = 0;  // 1-based optimizer step
  double loss = 0;   // mean over the window's trained tokens
  double lr = 0;
  double grad_norm = 0;
  int64_t tokens = 0;        // trained tokens (labels) in the window
  int64_t input_tokens = 0;  // tokens the model read (padding excluded)
  double seconds = 0;
  std::optional<double> val_loss;  // when validation ran after this step
  double loss_scale = 0;           // dynamic loss scaling: the scale used (0: none)
  bool skipped = false;            // the gradients overflowed: no update was made
  // The step's named loss parts (KD: "kd" and "ce"), each a mean over the same normaliser.
  std::vector<std::pair<std::string, double>> loss_parts;
};

class Trainer {
 public:
  Trainer(TrainingStep& step, BatchSource& data, TrainerOptions options);
  // Runs until max_steps or the data ends, resuming from the newest checkpoint when asked;
  // `on_step` sees every step's metrics (also appended to DIR/metrics.jsonl).
  std::vector<StepMetrics> run(const std::function<void(const StepMetrics&)>& on_step = {});
  int64_t completed_steps() const { return step_count_; }
  // Why run() returned; for kSignal, stop_signal() is the signal's number.
  StopReason stop_reason() const { return stop_reason_; }
  int stop_signal() const { return stop_signal_; }
  // Mean loss per trained token over the whole validation source.
  double evaluate();

 private:
  void save_checkpoint();
  bool resume_from_latest();
  // metrics.jsonl and the TensorBoard events keep exactly steps 1..last_step (none for 0).
  void cut_logs_back(int64_t last_step) const;
  // Checks options_.stop_requested; records the signal and returns true when one is pending.
  bool stop_pending();
  // The next window of micro-batches (empty: the data ended), its normaliser and input tokens.
  struct Window {
    std::vector<Batch> batches;
    int64_t normaliser = 0;
    int64_t input_tokens = 0;
  };
  Window next_window();
  // Runs the window's forward and backward passes; false when a stop abandoned the step.
  bool forward_backward(const Window& window, StepMetrics& metrics);
  // Unscales, clips and applies the gradients (or skips an overflowing step); fills the metrics.
  void update(int64_t step, StepMetrics& metrics);
  void register_gradient_hooks();
  bool is_primary() const { return collective_->is_primary(); }

  TrainingStep& step_;
  BatchSource& data_;
  TrainerOptions options_;
  SingleProcess single_process_;
  Collective* collective_;
  std::unique_ptr<Optimizer> optimizer_;
  NamedTensors trainable_;
  bool closes_window_ = false;  // the micro-batch in backward is its window's last
  int64_t step_count_ = 0;
  int64_t saved_step_ = -1;
  double loss_scale_ = 0;
  int64_t good_steps_ = 0;  // steps since the loss scale last changed
  StopReason stop_reason_ = StopReason::kMaxSteps;
  int stop_signal_ = 0;
  std::string validation_start_;  // the validation source's state before its first batch
  std::optional<int> gpu_;        // the CUDA device trained on, if any
};

// The step's loss summed over every batch `source` still gives, in evaluation mode without
// gradients, over all ranks: what validation and `retort eval` report.
struct Evaluation {
  double loss_sum = 0;
  int64_t normaliser = 0;  // the units loss_sum is summed over (trained tokens)
  int64_t rows = 0;
  double mean() const { return normaliser > 0 ? loss_sum / static_cast<double>(normaliser) : 0.0; }
};
Evaluation evaluate_step(TrainingStep& step, BatchSource& source, Collective& collective);

// checkpoint-000012 directories in `directory`, oldest first.
std::vector<std::string> list_checkpoints(const std::string& directory);

}  // namespace retort
