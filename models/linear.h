// The one linear choke point: every projection of every model -- the output head included -- goes
// through Projection, so LoRA/DoRA (lora/) attach to it without touching model code, and its
// weight sits behind a WeightStorage (dense, or quantized) that everything computes through. Base
// weights keep their HF names ("...q_proj.weight") so plain checkpoints load unchanged.
#pragma once

#include <torch/nn/module.h>

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "models/weight_storage.h"

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
  // A projection over a weight registered elsewhere (an output head tied to the embedding): it
  // has no parameters of its own.
  static std::shared_ptr<Projection> over(std::shared_ptr<WeightStorage> storage, int64_t in_features,
                                          int64_t out_features);

  // [..., in] -> [..., out]
  at::Tensor forward(const at::Tensor& input) const;
  // The base layer alone (what adapters build on).
  at::Tensor forward_base(const at::Tensor& input) const;

  int64_t in_features() const { return in_features_; }
  int64_t out_features() const { return out_features_; }
  const WeightStorage& storage() const { return *storage_; }
  // W [out, in] dense in `dtype` (dequantized from a quantized storage).
  at::Tensor dense_weight(at::ScalarType dtype) const { return storage_->dense(dtype); }
  // The first `rows` outputs, as an unregistered projection over a view of the same storage.
  std::shared_ptr<Projection> first_outputs(int64_t rows) const;

  // Replaces the weight by its per-output-row symmetric int8 quantisation (absmax / 127 of each
  // row), frozen; activations stay in `activation_dtype`. Halves bfloat16 weight memory. The
  // rows are computed where the weight is and the result placed on `device`.
  void quantize_int8(at::ScalarType activation_dtype, at::Device device);
  // Freezes the weight into a quantized storage: `codes` becomes the registered "weight" (frozen)
  // and each of `buffers` a buffer "weight_<name>", all moved to `device`; `build` then makes the
  // storage over those registered tensors, so moving the module moves what the storage reads.
  using StorageBuilder =
      std::function<std::shared_ptr<WeightStorage>(const at::Tensor& codes, const std::vector<at::Tensor>& buffers)>;
  void use_quantized(const at::Tensor& codes, const std::vector<std::pair<std::string, at::Tensor>>& buffers,
                     at::Device device, const StorageBuilder& build);

  // Folds a weight delta in (an adapter merged for inference) and takes it back out. A dense
  // weight is updated in place (W += delta, then W -= delta); a quantized one is stood in for by
  // a dense copy, dequantized plus delta, until unfolding restores the quantized storage exactly.
  void fold_in(const at::Tensor& delta);
  void fold_out(const at::Tensor& delta);

  // The registered "weight" parameter: the dense weight, or a quantized storage's codes. Code
  // that computes with the weight goes through storage() instead.
  at::Tensor weight;
  at::Tensor bias;  // [out] or undefined
  std::shared_ptr<ProjectionAdapter> adapter;  // null: plain linear

 private:
  Projection() = default;

  int64_t in_features_ = 0;
  int64_t out_features_ = 0;
  std::shared_ptr<WeightStorage> storage_;
  std::shared_ptr<WeightStorage> folded_from_;  // a quantized storage while a dense copy stands in
};

}  // namespace retort
