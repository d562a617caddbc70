// What one training step computes, plugged into the loop (train/trainer.h): a loss over a
// batch, summed over the tokens it counts, and the parameters the optimizer updates.
#pragma once

#include <ATen/core/Tensor.h>

#include <string>
#include <utility>
#include <vector>

#include "data/batch.h"
#include "models/causal_lm.h"

namespace retort {

struct StepResult {
  at::Tensor loss_sum;  // scalar, summed over the batch's normaliser units, autograd-connected
  int64_t tokens = 0;   // trained tokens (throughput)
  // What loss_sum is summed over: trained tokens for token losses (pairs, for a preference loss).
  int64_t normaliser = 0;
  // Named parts of the loss (detached scalars, summed over the same normaliser), for the logs.
  std::vector<std::pair<std::string, at::Tensor>> parts = {};
};

class TrainingStep {
 public:
  virtual ~TrainingStep() = default;
  virtual StepResult forward(const Batch& batch) = 0;
  // The units this batch's loss is summed over, known before forward: the loop divides every
  // micro-batch's loss by the whole window's total (more units weigh more).
  virtual int64_t normaliser(const Batch& batch) const { return batch.trained_tokens(); }
  // Training mode (dropout on) or evaluation mode.
  virtual void set_training(bool training) { (void)training; }
  // What the optimizer updates, with the names checkpoints store them under.
  virtual std::vector<std::pair<std::string, at::Tensor>> named_trainable_parameters() = 0;
  std::vector<at::Tensor> trainable_parameters();
};

// A batch's model inputs: padding mask, and for packed rows positions and segments.
ForwardOptions batch_forward_options(const Batch& batch);

// The hidden states [B, T, H] of the positions that predict a counted label, [N, H], in the
// order of next_token_targets(labels).counted flattened (`counted`: those flat indices).
at::Tensor predicting_rows(const at::Tensor& hidden, const at::Tensor& counted);

}  // namespace retort
