// What the training loop agrees on across processes, behind one interface: the window's trained
// token count and loss, the gradient norm, the overflow decision, and the moment all ranks have
// finished a checkpoint. Gradients can be handed over as backward produces them (per-parameter
// hooks), told whether the micro-batch closes the accumulation window, so a data-parallel
// implementation can start bucketed reductions during backward and skip them inside a window.
// One process: SingleProcess, where every operation is the identity.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>

namespace retort {

class Collective {
 public:
  virtual ~Collective() = default;
  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  bool is_primary() const { return rank() == 0; }  // writes metrics, TensorBoard and exports

  // Sums (max) over ranks, in place; every rank gets the result.
  virtual void all_reduce_sum(at::Tensor& tensor) = 0;
  virtual void all_reduce_max(at::Tensor& tensor) = 0;
  virtual void barrier() = 0;

  // True when each rank holds only part of the gradients (sharded parameters): their squared
  // norms then add up across ranks. Replicated gradients (data parallel) have the norm locally.
  virtual bool gradients_sharded() const { return false; }

  // Gradient hooks: when wanted, the loop calls gradient_ready for every trainable parameter as
  // backward produces its gradient, and gradients_finished after the window's last backward.
  virtual bool wants_gradient_hooks() const { return false; }
  virtual void gradient_ready(const std::string& name, const at::Tensor& grad, bool closes_window) {}
  virtual void gradients_finished() {}

  int64_t sum(int64_t value);
  double sum(double value);
  bool any(bool value);
};

class SingleProcess final : public Collective {
 public:
  int rank() const override { return 0; }
  int world_size() const override { return 1; }
  void all_reduce_sum(at::Tensor&) override {}
  void all_reduce_max(at::Tensor&) override {}
  void barrier() override {}
};

}  // namespace retort
