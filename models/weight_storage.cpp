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

}  // namespace

std::shared_ptr<WeightStorage> dense_storage(at::Tensor weight) { return std::make_shared<DenseStorage>(std::move(weight)); }

}  // namespace retort
