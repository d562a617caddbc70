// The one linear choke point: every projection of every model goes through Projection,
// so LoRA/DoRA (lora/) attach to it without touching model code. Base weights keep their
// HF names ("...q_proj.weight") so plain checkpoints load unchanged.
#pragma once

#include <torch/nn/module.h>

#include <memory>

namespace retort {

class Projection;

// What lora/ implements: the full output of a projection given its input and the base layer.
class ProjectionAdapter {
 public:
  virtual ~ProjectionAdapter() = default;
  virtual at::Tensor forward(const at::Tensor& input, const Projection& base) = 0;
};

class Projection : public torch::nn::Module {
 public:
  Projection(int64_t in_features, int64_t out_features, bool bias);

  // [..., in] -> [..., out]
  at::Tensor forward(const at::Tensor& input) const;
  // The base layer alone (what adapters build on).
  at::Tensor forward_base(const at::Tensor& input) const;

  int64_t in_features() const { return in_features_; }
  int64_t out_features() const { return out_features_; }

  // Replaces the weight by its per-output-channel symmetric int8 quantisation (absmax / 127 of
  // each row), frozen; activations stay in `activation_dtype`. Halves bfloat16 weight memory.
  void quantize_int8(at::ScalarType activation_dtype);

  at::Tensor weight;  // [out, in]; int8 when weight_scale is defined
  at::Tensor bias;    // [out] or undefined
  // Weight-only int8 (a frozen teacher): weight = round(w / scale) per output row, scale [out] in
  // the activation dtype; the output is (x @ weight^T) * scale.
  at::Tensor weight_scale;
  std::shared_ptr<ProjectionAdapter> adapter;  // null: plain linear

 private:
  int64_t in_features_;
  int64_t out_features_;
};

}  // namespace retort
