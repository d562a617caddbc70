// The one training loop shared by fine-tuning and distillation: micro-batches, gradient
// accumulation normalised by the trained tokens of the whole window, clipping, AdamW, the
// schedule, and a NaN guard. What a step computes is pluggable (TrainingStep).
#pragma once

#include <ATen/core/Tensor.h>

#include <functional>
#include <optional>
#include <vector>

#include "train/optimizer.h"

namespace retort {

struct Batch {
  at::Tensor input_ids;       // [B, T] int64
  at::Tensor labels;          // [B, T] int64, kIgnoreIndex where nothing is learned
  at::Tensor attention_mask;  // [B, T] 1 = token, 0 = padding (optional)
  at::Tensor position_ids;    // [B, T] (optional; packing restarts them per example)
  // Tokens that carry loss: labels[:, 1:] != kIgnoreIndex (a position predicts the next label).
  int64_t trained_tokens() const;
};

struct StepResult {
  at::Tensor loss_sum;  // scalar, summed over the batch's trained tokens, autograd-connected
  int64_t tokens = 0;
};

class TrainingStep {
 public:
  virtual ~TrainingStep() = default;
  virtual StepResult forward(const Batch& batch) = 0;
  virtual std::vector<at::Tensor> trainable_parameters() = 0;
};

class BatchSource {
 public:
  virtual ~BatchSource() = default;
  virtual std::optional<Batch> next() = 0;  // nullopt: the data is exhausted
};

struct TrainerOptions {
  int64_t max_steps = 1;
  int64_t gradient_accumulation = 1;
  AdamWOptions adamw;
  ScheduleOptions schedule;
  double max_grad_norm = 1.0;  // 0: no clipping
};

struct StepMetrics {
  int64_t step = 0;  // 1-based optimizer step
  double loss = 0;   // mean over the window's trained tokens
  double lr = 0;
  double grad_norm = 0;
  int64_t tokens = 0;
  double seconds = 0;
};

class Trainer {
 public:
  Trainer(TrainingStep& step, BatchSource& data, TrainerOptions options);
  // Runs until max_steps or the data ends; `on_step` sees every step's metrics.
  std::vector<StepMetrics> run(const std::function<void(const StepMetrics&)>& on_step = {});

 private:
  TrainingStep& step_;
  BatchSource& data_;
  TrainerOptions options_;
  AdamW optimizer_;
};

}  // namespace retort
