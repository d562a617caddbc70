#include "train/optimizer.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <algorithm>
#include <cmath>

#include "io/error.h"
#include "train/collective.h"

namespace retort {

AdamW::AdamW(NamedTensors parameters, AdamWOptions options) : options_(options) {
  for (auto& [name, tensor] : parameters) {
    names_.push_back(name);
    parameters_.push_back(tensor);
  }
  Group decay{{}, options.weight_decay}, no_decay{{}, 0.0};
  for (size_t i = 0; i < parameters_.size(); ++i) {
    const at::Tensor& p = parameters_[i];
    const bool low_precision = p.scalar_type() == at::kBFloat16 || p.scalar_type() == at::kHalf;
    master_.push_back(low_precision ? p.detach().to(at::kFloat).contiguous() : at::Tensor());
    const at::Tensor& shape_of = low_precision ? master_.back() : p;
    exp_avg_.push_back(at::zeros_like(shape_of, at::MemoryFormat::Contiguous));
    exp_avg_sq_.push_back(at::zeros_like(shape_of, at::MemoryFormat::Contiguous));
    steps_.push_back(at::zeros({}, p.options().dtype(at::kFloat).device(at::kCPU)));
    (p.dim() >= 2 ? decay : no_decay).members.push_back(i);  // no decay on norms and biases
  }
  for (Group* group : {&decay, &no_decay}) {
    if (!group->members.empty()) groups_.push_back(*group);
  }
}

void AdamW::step(double lr) {
  c10::NoGradGuard no_grad;
  for (const Group& group : groups_) {
    std::vector<at::Tensor> params, grads, avg, avg_sq, steps;
    for (size_t i : group.members) {
      if (!parameters_[i].grad().defined()) continue;
      const bool master = master_[i].defined();
      params.push_back(master ? master_[i] : parameters_[i]);
      grads.push_back(master ? parameters_[i].grad().to(at::kFloat) : parameters_[i].grad());
      avg.push_back(exp_avg_[i]);
      avg_sq.push_back(exp_avg_sq_[i]);
      steps_[i].add_(1);  // torch's fused path increments the step before the kernel
      steps.push_back(steps_[i].to(parameters_[i].device()));
    }
    if (params.empty()) continue;
    at::_fused_adamw_(params, grads, avg, avg_sq, /*max_exp_avg_sqs=*/{}, steps, lr, options_.beta1, options_.beta2,
                      group.weight_decay, options_.eps, /*amsgrad=*/false, /*maximize=*/false);
    for (size_t i : group.members) {
      if (master_[i].defined() && parameters_[i].grad().defined()) parameters_[i].copy_(master_[i]);
    }
  }
}

void AdamW::zero_grad() {
  for (at::Tensor& p : parameters_) {
    if (p.grad().defined()) p.mutable_grad() = at::Tensor();
  }
}

NamedTensors AdamW::state() const {
  NamedTensors out;
  for (size_t i = 0; i < parameters_.size(); ++i) {
    const std::string prefix = "adamw." + names_[i];
    out.emplace_back(prefix + ".exp_avg", exp_avg_[i]);
    out.emplace_back(prefix + ".exp_avg_sq", exp_avg_sq_[i]);
    out.emplace_back(prefix + ".step", steps_[i]);
    if (master_[i].defined()) out.emplace_back(prefix + ".master", master_[i]);
  }
  return out;
}

void AdamW::load_state(const FindTensor& find) {
  if (!parameters_.empty() && !find("adamw." + names_[0] + ".exp_avg") && find("adamw.0")) {
    load_positional_state(find);
    return;
  }
  c10::NoGradGuard no_grad;
  for (const auto& [name, tensor] : state()) {
    const std::optional<at::Tensor> stored = find(name);
    if (!stored) throw bad_input("the optimizer state lacks a tensor").tensor(name);
    if (!stored->sizes().equals(tensor.sizes())) throw bad_input("the optimizer state has another shape").tensor(name);
    at::Tensor target = tensor;  // a handle to the state itself
    target.copy_(*stored);
  }
}

void AdamW::load_positional_state(const FindTensor& find) {
  std::vector<at::Tensor> state;
  for (size_t i = 0;; ++i) {
    std::optional<at::Tensor> tensor = find("adamw." + std::to_string(i));
    if (!tensor) break;
    state.push_back(*tensor);
  }
  const size_t masters =
      static_cast<size_t>(std::count_if(master_.begin(), master_.end(), [](const at::Tensor& m) { return m.defined(); }));
  if (state.size() != 3 * parameters_.size() + masters) throw bad_input("optimizer state does not match the parameters");
  c10::NoGradGuard no_grad;
  for (size_t i = 0; i < parameters_.size(); ++i) {
    exp_avg_[i].copy_(state[3 * i]);
    exp_avg_sq_[i].copy_(state[3 * i + 1]);
    steps_[i].copy_(state[3 * i + 2]);
  }
  size_t next = 3 * parameters_.size();
  for (at::Tensor& master : master_) {
    if (master.defined()) master.copy_(state[next++]);
  }
}

double clip_grad_norm(const std::vector<at::Tensor>& parameters, double max_norm) {
  SingleProcess alone;
  return clip_grad_norm(parameters, max_norm, alone);
}

double clip_grad_norm(const std::vector<at::Tensor>& parameters, double max_norm, Collective& collective) {
  c10::NoGradGuard no_grad;
  std::vector<at::Tensor> norms;
  for (const at::Tensor& p : parameters) {
    if (p.grad().defined()) norms.push_back(at::linalg_vector_norm(p.grad().to(at::kFloat), 2));
  }
  const bool sharded = collective.world_size() > 1 && collective.gradients_sharded();
  if (norms.empty() && !sharded) return 0.0;
  at::Tensor total = norms.empty() ? at::zeros({}, at::kFloat) : at::linalg_vector_norm(at::stack(norms), 2);
  if (sharded) {
    at::Tensor squares = (total * total).to(at::kDouble).reshape({1});
    collective.all_reduce_sum(squares);
    total = squares.sqrt().reshape({}).to(total.dtype());
  }
  const double norm = total.item<double>();
  if (max_norm > 0 && std::isfinite(norm)) {
    // As torch: scale by min(1, max_norm / (norm + 1e-6)).
    const at::Tensor factor = at::clamp_max(max_norm / (total + 1e-6), 1.0);
    for (const at::Tensor& p : parameters) {
      if (p.grad().defined()) p.grad().mul_(factor.to(p.grad().device(), p.grad().scalar_type()));
    }
  }
  return norm;
}

Schedule parse_schedule(const std::string& name) {
  if (name == "constant") return Schedule::kConstant;
  if (name == "linear") return Schedule::kLinear;
  if (name == "cosine") return Schedule::kCosine;
  throw bad_input("unknown schedule '" + name + "' (valid: constant, linear, cosine)").key("scheduler.name");
}

double lr_multiplier(const ScheduleOptions& options, int64_t step) {
  const double warmup = static_cast<double>(options.warmup_steps);
  if (step < options.warmup_steps) return static_cast<double>(step) / std::max(1.0, warmup);
  const double span = std::max<double>(1.0, static_cast<double>(options.total_steps - options.warmup_steps));
  const double progress = static_cast<double>(step - options.warmup_steps) / span;
  double decay = 1.0;
  switch (options.kind) {
    case Schedule::kConstant: return 1.0;
    case Schedule::kLinear: decay = std::max(0.0, static_cast<double>(options.total_steps - step) / span); break;
    case Schedule::kCosine: decay = std::max(0.0, 0.5 * (1.0 + std::cos(M_PI * progress))); break;
  }
  return decay * (1.0 - options.min_lr_ratio) + options.min_lr_ratio;
}

}  // namespace retort
