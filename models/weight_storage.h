// How a projection's weight [out, in] is stored, behind one interface: everything that computes
// with a weight asks its storage for x @ W^T or for W as a dense tensor, never for the raw
// bytes, so a quantized base (int8 rows, NF4, GGUF blocks: quantized_storage.h) works wherever a dense
// one does. Storages hold handles to the module's registered tensors, so moving the module
// (Module::to) moves them too.
#pragma once

#include <ATen/core/Tensor.h>

#include <memory>
#include <optional>

namespace retort {

enum class WeightStorageKind { kDense, kInt8Rows, kNf4, kGgufBlocks };

class WeightStorage {
 public:
  virtual ~WeightStorage() = default;
  virtual WeightStorageKind kind() const = 0;
  // input [..., in] -> input @ W^T (+ bias) [..., out], with autograd through input (and through
  // a trainable dense weight).
  virtual at::Tensor linear(const at::Tensor& input, const std::optional<at::Tensor>& bias) const = 0;
  // W [out, in] as a dense tensor in `dtype` (dequantized for a quantized storage; a dense
  // storage in its own dtype returns the weight itself).
  virtual at::Tensor dense(at::ScalarType dtype) const = 0;
  // The first `rows` output rows (a view; e.g. the vocabulary two models share).
  virtual std::shared_ptr<WeightStorage> first_rows(int64_t rows) const = 0;
  // The dtype outputs come in, and where the weight lives.
  virtual at::ScalarType compute_dtype() const = 0;
  virtual at::Device device() const = 0;
  virtual int64_t bytes() const = 0;
  // The dense parameter itself when the weight can train (a dense storage), else undefined.
  virtual at::Tensor trainable_tensor() const { return at::Tensor(); }
};

// A plain tensor: what checkpoints load and full fine-tuning trains.
std::shared_ptr<WeightStorage> dense_storage(at::Tensor weight);

// Weight-only symmetric int8 per output row: codes = round(w / scale) in [-127, 127], scale =
// absmax(row) / 127 [out] in the compute dtype; x @ W^T = (x @ codes^T) * scale
// (quantized_storage.cpp).
std::shared_ptr<WeightStorage> int8_rows_storage(at::Tensor codes, at::Tensor scale);

}  // namespace retort
