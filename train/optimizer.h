// AdamW with decoupled weight decay applied to >= 2-D weights only, running ATen's fused
// kernel (at::_fused_adamw_) per parameter group; learning-rate schedules as HF defines them.
// Reference: torch/optim/adamw.py (fused path), transformers optimization.py (schedules).
#pragma once

#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

namespace retort {

struct AdamWOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;
};

// Parameters stored in bfloat16 or float16 get a float32 master copy: the optimizer state and the
// update are float32 and the parameter is the master rounded after each step.
class AdamW {
 public:
  AdamW(std::vector<at::Tensor> parameters, AdamWOptions options);

  void step(double lr);  // parameters with no gradient are skipped
  void zero_grad();
  const std::vector<at::Tensor>& parameters() const { return parameters_; }

  // State for checkpoints: per parameter exp_avg, exp_avg_sq, step (same order as parameters()),
  // then the float32 master copies of low-precision parameters.
  std::vector<at::Tensor> state_tensors() const;
  void load_state_tensors(const std::vector<at::Tensor>& state);

 private:
  struct Group {
    std::vector<size_t> members;  // indices into parameters_
    double weight_decay;
  };
  std::vector<at::Tensor> parameters_;
  std::vector<at::Tensor> exp_avg_, exp_avg_sq_, steps_;
  std::vector<at::Tensor> master_;  // float32 copy of a low-precision parameter; undefined otherwise
  std::vector<Group> groups_;
  AdamWOptions options_;
};

// The global L2 norm of all gradients; when above max_norm (> 0) they are scaled down to it.
// Returns the norm before clipping (as torch.nn.utils.clip_grad_norm_).
double clip_grad_norm(const std::vector<at::Tensor>& parameters, double max_norm);

struct ScheduleOptions {
  std::string name = "cosine";  // constant | linear | cosine
  int64_t warmup_steps = 0;
  int64_t total_steps = 1;
  double min_lr_ratio = 0.0;
};

// Multiplier of the peak learning rate for optimizer step `step` (0-based, as HF's LambdaLR).
double lr_multiplier(const ScheduleOptions& options, int64_t step);

}  // namespace retort
