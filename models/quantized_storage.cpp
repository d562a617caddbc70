#include "models/quantized_storage.h"

#include <ATen/ATen.h>
#include <ATen/core/ivalue.h>
#include <c10/core/GradMode.h>
#include <torch/csrc/autograd/custom_function.h>

#include "io/error.h"
#include "models/gemm.h"

namespace retort {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// A frozen weight kept in a compact form and dequantized whenever it computes.
class QuantizedStorage : public WeightStorage, public std::enable_shared_from_this<QuantizedStorage> {
 public:
  QuantizedStorage(int64_t out_features, int64_t in_features, at::ScalarType compute_dtype)
      : out_(out_features), in_(in_features), compute_dtype_(compute_dtype) {}

  at::Tensor linear(const at::Tensor& input, const std::optional<at::Tensor>& bias) const override;
  at::Tensor dense(at::ScalarType dtype) const override { return dequantize_float().to(dtype); }
  std::shared_ptr<WeightStorage> first_rows(int64_t) const override {
    throw internal_error("a quantized projection has no row views (output heads stay dense)");
  }
  at::ScalarType compute_dtype() const override { return compute_dtype_; }

  // W [out, in] in `dtype` for one product. On the CPU it is written into a per-thread scratch
  // buffer that the next product reuses, so callers must not keep it.
  at::Tensor transient_weight(at::ScalarType dtype) const;
  // x [M, in] @ W^T, and the input gradient dY [M, out] @ W, W dequantized for the product only.
  virtual at::Tensor product(const at::Tensor& x) const { return matmul_2d(x, transient_weight(x.scalar_type()).t()); }
  virtual at::Tensor input_gradient(const at::Tensor& grad) const {
    return matmul_2d(grad, transient_weight(grad.scalar_type()));
  }

 protected:
  // W as float32: on the CPU into `out` (contiguous [out, in]); elsewhere as a new tensor.
  virtual void dequantize_cpu(float* out) const = 0;
  virtual at::Tensor dequantize_float() const = 0;
  int64_t numel() const { return out_ * in_; }

  int64_t out_, in_;
  at::ScalarType compute_dtype_;
};

at::Tensor QuantizedStorage::transient_weight(at::ScalarType dtype) const {
  if (!device().is_cpu()) return dequantize_float().to(dtype);
  thread_local at::Tensor scratch, converted;
  if (!scratch.defined() || scratch.numel() < numel()) scratch = at::empty({numel()}, at::kFloat);
  dequantize_cpu(scratch.data_ptr<float>());
  const at::Tensor weight = scratch.narrow(0, 0, numel()).view({out_, in_});
  if (dtype == at::kFloat) return weight;
  if (!converted.defined() || converted.scalar_type() != dtype || converted.numel() < numel()) {
    converted = at::empty({numel()}, at::TensorOptions().dtype(dtype));
  }
  return converted.narrow(0, 0, numel()).view({out_, in_}).copy_(weight);
}

// Keeps the storage alive in the autograd graph (saved_data holds IValues).
struct StorageHandle : torch::CustomClassHolder {
  explicit StorageHandle(std::shared_ptr<const QuantizedStorage> s) : storage(std::move(s)) {}
  std::shared_ptr<const QuantizedStorage> storage;
};

// y = x @ W^T; dX = dY @ W with W dequantized again. No gradient for W (the base is frozen).
struct QuantizedLinearFunction : public torch::autograd::Function<QuantizedLinearFunction> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, std::shared_ptr<const QuantizedStorage> storage) {
    at::Tensor out = storage->product(x);
    ctx->saved_data["storage"] = at::IValue::make_capsule(c10::make_intrusive<StorageHandle>(std::move(storage)));
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto handle = c10::static_intrusive_pointer_cast<StorageHandle>(ctx->saved_data["storage"].toCapsule());
    const at::Tensor grad = grad_outputs[0].contiguous();
    return {handle->storage->input_gradient(grad), at::Tensor()};
  }
};

at::Tensor QuantizedStorage::linear(const at::Tensor& input, const std::optional<at::Tensor>& bias) const {
  std::vector<int64_t> shape = input.sizes().vec();
  shape.back() = out_;
  const at::Tensor x = input.reshape({-1, in_});
  at::Tensor out = at::GradMode::is_enabled() && input.requires_grad()
                       ? QuantizedLinearFunction::apply(x, shared_from_this())
                       : product(x);
  if (bias) out = at::GradMode::is_enabled() && bias->requires_grad() ? out + *bias : out.add_(*bias);
  return out.view(shape);
}

class Int8RowsStorage final : public QuantizedStorage {
 public:
  Int8RowsStorage(at::Tensor codes, at::Tensor scale)
      : QuantizedStorage(codes.size(0), codes.size(1), scale.scalar_type()),
        codes_(std::move(codes)),
        scale_(std::move(scale)) {}
  WeightStorageKind kind() const override { return WeightStorageKind::kInt8Rows; }
  at::Device device() const override { return codes_.device(); }
  int64_t bytes() const override { return static_cast<int64_t>(codes_.nbytes() + scale_.nbytes()); }
  std::shared_ptr<WeightStorage> first_rows(int64_t rows) const override {
    return std::make_shared<Int8RowsStorage>(codes_.narrow(0, 0, rows), scale_.narrow(0, 0, rows));
  }
  // The product is exact in the integers' scale, then each output channel takes its scale
  // (cheaper than scaling the [out, in] weight); the codes are widened for the product only.
  at::Tensor product(const at::Tensor& x) const override {
    return matmul_2d(x, codes_.to(x.scalar_type()).t()).mul_(scale_);
  }
  at::Tensor input_gradient(const at::Tensor& grad) const override {
    return matmul_2d(grad * scale_, codes_.to(grad.scalar_type()));
  }

 protected:
  void dequantize_cpu(float* out) const override {
    at::from_blob(out, {out_, in_}, at::kFloat).copy_(dequantize_float());
  }
  at::Tensor dequantize_float() const override {
    return codes_.to(at::kFloat) * scale_.to(at::kFloat).unsqueeze(1);
  }

 private:
  at::Tensor codes_;  // int8 [out, in]
  at::Tensor scale_;  // [out]
};

class Nf4Storage final : public QuantizedStorage {
 public:
  Nf4Storage(int64_t out_features, int64_t in_features, at::ScalarType compute_dtype, Nf4Tensor tensor)
      : QuantizedStorage(out_features, in_features, compute_dtype), tensor_(std::move(tensor)) {}
  WeightStorageKind kind() const override { return WeightStorageKind::kNf4; }
  at::Device device() const override { return tensor_.codes.device(); }
  int64_t bytes() const override {
    return static_cast<int64_t>(tensor_.codes.nbytes() + tensor_.absmax_codes.nbytes() +
                                tensor_.absmax_scales.nbytes() + tensor_.absmax_offset.nbytes());
  }

 protected:
  void dequantize_cpu(float* out) const override {
    dequantize_nf4_into(tensor_.codes, nf4_block_absmax(tensor_).contiguous(), out, numel());
  }
  at::Tensor dequantize_float() const override {
    if (!device().is_cpu()) return dequantize_nf4(tensor_, numel()).view({out_, in_});
    at::Tensor out = at::empty({out_, in_}, at::kFloat);
    dequantize_cpu(out.data_ptr<float>());
    return out;
  }

 private:
  Nf4Tensor tensor_;
};

class GgufBlocksStorage final : public QuantizedStorage {
 public:
  GgufBlocksStorage(int64_t out_features, int64_t in_features, at::ScalarType compute_dtype, GgmlType type,
                    at::Tensor blocks)
      : QuantizedStorage(out_features, in_features, compute_dtype), type_(type), blocks_(std::move(blocks)) {}
  WeightStorageKind kind() const override { return WeightStorageKind::kGgufBlocks; }
  at::Device device() const override { return blocks_.device(); }
  int64_t bytes() const override { return static_cast<int64_t>(blocks_.nbytes()); }

 protected:
  void dequantize_cpu(float* out) const override {
    dequantize_to_float(type_, blocks_.data_ptr<uint8_t>(), numel(), out);
  }
  // Off the CPU the blocks are dequantized on the CPU and the result moved (ggml's block formats
  // have no ATen form; a GPU kernel is left until it can be measured on one).
  at::Tensor dequantize_float() const override {
    const at::Tensor host = blocks_.to(at::kCPU).contiguous();
    at::Tensor out = at::empty({out_, in_}, at::kFloat);
    dequantize_to_float(type_, host.data_ptr<uint8_t>(), numel(), out.data_ptr<float>());
    return out.to(device());
  }

 private:
  GgmlType type_;
  at::Tensor blocks_;  // uint8 [out, row bytes]
};

void freeze_bias(Projection& projection, at::ScalarType compute_dtype, at::Device device) {
  if (!projection.bias.defined()) return;
  c10::NoGradGuard no_grad;
  projection.bias.set_requires_grad(false);
  projection.bias.set_data(projection.bias.to(device, compute_dtype));
}

}  // namespace

std::shared_ptr<WeightStorage> int8_rows_storage(at::Tensor codes, at::Tensor scale) {
  return std::make_shared<Int8RowsStorage>(std::move(codes), std::move(scale));
}

BaseQuantization parse_base_quantization(const std::string& name, const std::string& key) {
  if (name == "none") return BaseQuantization::kNone;
  if (name == "int8") return BaseQuantization::kInt8;
  if (name == "nf4") return BaseQuantization::kNf4;
  if (name == "keep") return BaseQuantization::kKeep;
  throw bad_input("unknown quantization '" + name + "'; valid: none, int8, nf4, keep").key(key);
}

std::string base_quantization_name(BaseQuantization quantization) {
  switch (quantization) {
    case BaseQuantization::kNone: return "none";
    case BaseQuantization::kInt8: return "int8";
    case BaseQuantization::kNf4: return "nf4";
    case BaseQuantization::kKeep: return "keep";
  }
  return "none";
}

bool keepable_ggml_type(GgmlType type) {
  switch (type) {
    case GgmlType::Q4_0: case GgmlType::Q4_1: case GgmlType::Q5_0: case GgmlType::Q5_1: case GgmlType::Q8_0:
    case GgmlType::Q4_K: case GgmlType::Q5_K: case GgmlType::Q6_K:
      return true;
    default:
      return false;
  }
}

std::string keepable_ggml_type_names() { return "Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K"; }

void quantize_projection_nf4(Projection& projection, at::ScalarType compute_dtype, at::Device device) {
  use_nf4_tensor(projection, quantize_nf4(projection.dense_weight(at::kFloat)), compute_dtype, device);
}

void use_nf4_tensor(Projection& projection, Nf4Tensor q, at::ScalarType compute_dtype, at::Device device) {
  const int64_t out = projection.out_features(), in = projection.in_features();
  if (q.codes.numel() * 2 != out * in) throw internal_error("NF4 codes do not match the projection's shape");
  projection.use_quantized(q.codes,
                           {{"absmax", q.absmax_codes}, {"absmax_scales", q.absmax_scales},
                            {"absmax_offset", q.absmax_offset}},
                           device, [&](const at::Tensor& codes, const std::vector<at::Tensor>& buffers) {
                             return std::make_shared<Nf4Storage>(
                                 out, in, compute_dtype, Nf4Tensor{codes, buffers[0], buffers[1], buffers[2]});
                           });
  freeze_bias(projection, compute_dtype, device);
}

at::Tensor as_quantized_base(const at::Tensor& weight, BaseQuantization quantization, at::ScalarType compute_dtype) {
  if (quantization == BaseQuantization::kNone || quantization == BaseQuantization::kKeep) return weight;
  Projection projection(weight.size(1), weight.size(0), false);
  {
    c10::NoGradGuard no_grad;
    projection.weight.set_data(weight.detach().to(at::kCPU, at::kFloat).contiguous());
  }
  if (quantization == BaseQuantization::kNf4) {
    quantize_projection_nf4(projection, compute_dtype, at::kCPU);
  } else {
    projection.quantize_int8(compute_dtype, at::kCPU);
  }
  return projection.dense_weight(at::kFloat);
}

void keep_projection_blocks(Projection& projection, GgmlType type, const at::Tensor& blocks,
                            at::ScalarType compute_dtype, at::Device device) {
  if (!keepable_ggml_type(type)) {
    throw bad_input("block type " + ggml_type_name(type) + " cannot be kept as stored; supported: " +
                    keepable_ggml_type_names());
  }
  const int64_t out = projection.out_features(), in = projection.in_features();
  const GgmlTypeInfo& info = ggml_type_info(type);
  if (in % info.block_size != 0 || blocks.dim() != 2 || blocks.size(0) != out ||
      blocks.size(1) != in / info.block_size * info.type_size) {
    throw internal_error("GGUF blocks do not match the projection's shape");
  }
  projection.use_quantized(blocks.contiguous(), {}, device, [&](const at::Tensor& codes, const std::vector<at::Tensor>&) {
    return std::make_shared<GgufBlocksStorage>(out, in, compute_dtype, type, codes);
  });
  freeze_bias(projection, compute_dtype, device);
}

}  // namespace retort
