#include "models/weight_storage.h"

#include <ATen/ATen.h>

#include "models/gemm.h"

namespace retort {
namespace {

class DenseStorage final : public WeightStorage {
 public:
  explicit DenseStorage(at::Tensor weight) : weight_(std::move(weight)) {}
  WeightStorageKind kind() const override { return WeightStorageKind::kDense; }
  at::Tensor linear(const at::Tensor& input, const std::optional<at::Tensor>& bias) const override {
    return gemm_linear(input, weight_, bias);
  }
  at::Tensor dense(at::ScalarType dtype) const override { return weight_.to(dtype); }
  std::shared_ptr<WeightStorage> first_rows(int64_t rows) const override {
    return std::make_shared<DenseStorage>(weight_.narrow(0, 0, rows));
  }
  at::ScalarType compute_dtype() const override { return weight_.scalar_type(); }
  at::Device device() const override { return weight_.device(); }
  int64_t bytes() const override { return static_cast<int64_t>(weight_.nbytes()); }
  at::Tensor trainable_tensor() const override { return weight_; }

 private:
  at::Tensor weight_;
};

class Int8RowsStorage final : public WeightStorage {
 public:
  Int8RowsStorage(at::Tensor codes, at::Tensor scale) : codes_(std::move(codes)), scale_(std::move(scale)) {}
  WeightStorageKind kind() const override { return WeightStorageKind::kInt8Rows; }
  at::Tensor linear(const at::Tensor& input, const std::optional<at::Tensor>& bias) const override {
    // One layer's codes are widened at a time; the product is exact in the integers' scale, then
    // each output channel takes its scale (cheaper than scaling the [out, in] weight).
    at::Tensor out = gemm_linear(input, codes_.to(input.scalar_type())).mul_(scale_);
    return bias ? out.add_(*bias) : out;
  }
  at::Tensor dense(at::ScalarType dtype) const override {
    return (codes_.to(at::kFloat) * scale_.to(at::kFloat).unsqueeze(1)).to(dtype);
  }
  std::shared_ptr<WeightStorage> first_rows(int64_t rows) const override {
    return std::make_shared<Int8RowsStorage>(codes_.narrow(0, 0, rows), scale_.narrow(0, 0, rows));
  }
  at::ScalarType compute_dtype() const override { return scale_.scalar_type(); }
  at::Device device() const override { return codes_.device(); }
  int64_t bytes() const override { return static_cast<int64_t>(codes_.nbytes() + scale_.nbytes()); }

 private:
  at::Tensor codes_;  // int8 [out, in]
  at::Tensor scale_;  // [out]
};

}  // namespace

std::shared_ptr<WeightStorage> dense_storage(at::Tensor weight) { return std::make_shared<DenseStorage>(std::move(weight)); }

std::shared_ptr<WeightStorage> int8_rows_storage(at::Tensor codes, at::Tensor scale) {
  return std::make_shared<Int8RowsStorage>(std::move(codes), std::move(scale));
}

}  // namespace retort
