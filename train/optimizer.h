// AdamW with decoupled weight decay applied to >= 2-D weights only, running ATen's fused
// kernel (at::_fused_adamw_) per parameter group; learning-rate schedules as HF defines them.
// Reference: torch/optim/adamw.py (fused path), transformers optimization.py (schedules).
#pragma once

#include <ATen/core/Tensor.h>

#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace retort {

class Collective;

struct AdamWOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;
};

using NamedTensors = std::vector<std::pair<std::string, at::Tensor>>;

// What the training loop needs of an optimizer. Checkpoint state is keyed by parameter name, so a
// checkpoint reads back whatever order (or subset, when state is sharded over processes) the
// parameters come in.
class Optimizer {
 public:
  virtual ~Optimizer() = default;
  virtual void step(double lr) = 0;  // parameters with no gradient are skipped
  virtual void zero_grad() = 0;
  virtual const std::vector<at::Tensor>& parameters() const = 0;
  virtual NamedTensors state() const = 0;
  // Restores state() from a checkpoint file's tensors; bad_input naming the missing tensor.
  using FindTensor = std::function<std::optional<at::Tensor>(const std::string& name)>;
  virtual void load_state(const FindTensor& find) = 0;
};

// Parameters stored in bfloat16 or float16 get a float32 master copy: the optimizer state and the
// update are float32 and the parameter is the master rounded after each step.
class AdamW : public Optimizer {
 public:
  AdamW(NamedTensors parameters, AdamWOptions options);

  void step(double lr) override;
  void zero_grad() override;
  const std::vector<at::Tensor>& parameters() const override { return parameters_; }
  // "adamw.<parameter>.exp_avg", ".exp_avg_sq", ".step" and, for low-precision parameters, ".master".
  NamedTensors state() const override;
  // Also reads the older positional layout ("adamw.0", "adamw.1", ...: exp_avg, exp_avg_sq, step per
  // parameter in order, then the master copies).
  void load_state(const FindTensor& find) override;

 private:
  struct Group {
    std::vector<size_t> members;  // indices into parameters_
    double weight_decay;
  };
  void load_positional_state(const FindTensor& find);

  std::vector<std::string> names_;
  std::vector<at::Tensor> parameters_;
  std::vector<at::Tensor> exp_avg_, exp_avg_sq_, steps_;
  std::vector<at::Tensor> master_;  // float32 copy of a low-precision parameter; undefined otherwise
  std::vector<Group> groups_;
  AdamWOptions options_;
};

// The global L2 norm of all gradients; when above max_norm (> 0) they are scaled down to it.
// Returns the norm before clipping (as torch.nn.utils.clip_grad_norm_). With gradients sharded
// over processes, the squared norms of all ranks add up (`collective`).
double clip_grad_norm(const std::vector<at::Tensor>& parameters, double max_norm, Collective& collective);
double clip_grad_norm(const std::vector<at::Tensor>& parameters, double max_norm);

enum class Schedule { kConstant, kLinear, kCosine };
// "constant" | "linear" | "cosine"; bad_input naming scheduler.name otherwise.
Schedule parse_schedule(const std::string& name);

struct ScheduleOptions {
  Schedule kind = Schedule::kCosine;
  int64_t warmup_steps = 0;
  int64_t total_steps = 1;
  double min_lr_ratio = 0.0;
};

// Multiplier of the peak learning rate for optimizer step `step` (0-based, as HF's LambdaLR).
double lr_multiplier(const ScheduleOptions& options, int64_t step);

}  // namespace retort
