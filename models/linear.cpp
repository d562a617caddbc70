#include "models/linear.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

namespace retort {

Projection::Projection(int64_t in_features, int64_t out_features, bool bias)
    : in_features_(in_features), out_features_(out_features) {
  weight = register_parameter("weight", at::empty({out_features, in_features}));
  if (bias) this->bias = register_parameter("bias", at::zeros({out_features}));
  storage_ = dense_storage(weight);
}

std::shared_ptr<Projection> Projection::over(std::shared_ptr<WeightStorage> storage, int64_t in_features,
                                             int64_t out_features) {
  std::shared_ptr<Projection> projection(new Projection());
  projection->in_features_ = in_features;
  projection->out_features_ = out_features;
  projection->storage_ = std::move(storage);
  return projection;
}

at::Tensor Projection::forward_base(const at::Tensor& input) const {
  return storage_->linear(input, bias.defined() ? std::optional<at::Tensor>(bias) : std::nullopt);
}

at::Tensor Projection::forward(const at::Tensor& input) const {
  return adapter ? adapter->forward(input, *this) : forward_base(input);
}

std::shared_ptr<Projection> Projection::first_outputs(int64_t rows) const {
  auto view = over(storage_->first_rows(rows), in_features_, rows);
  if (bias.defined()) view->bias = bias.narrow(0, 0, rows);
  return view;
}

void Projection::quantize_int8(at::ScalarType activation_dtype, at::Device device) {
  c10::NoGradGuard no_grad;
  const at::Tensor w = dense_weight(at::kFloat);
  const at::Tensor scale = at::clamp_min(w.abs().amax(1) / 127.0, 1e-12);  // [out]
  const at::Tensor q = at::round(w / scale.unsqueeze(1)).clamp_(-127, 127).to(at::kChar);
  use_quantized(q, {{"scale", scale.to(activation_dtype)}}, device,
                [](const at::Tensor& codes, const std::vector<at::Tensor>& buffers) {
                  return int8_rows_storage(codes, buffers[0]);
                });
  if (bias.defined()) {
    bias.set_requires_grad(false);
    bias.set_data(bias.to(device, activation_dtype));
  }
}

void Projection::use_quantized(const at::Tensor& codes, const std::vector<std::pair<std::string, at::Tensor>>& buffers,
                               at::Device device, const StorageBuilder& build) {
  c10::NoGradGuard no_grad;
  weight.set_requires_grad(false);
  weight.set_data(codes.to(device));
  std::vector<at::Tensor> registered;
  for (const auto& [name, value] : buffers) registered.push_back(register_buffer("weight_" + name, value.to(device)));
  storage_ = build(weight, registered);
}

void Projection::fold_in(const at::Tensor& delta) {
  c10::NoGradGuard no_grad;
  if (storage_->kind() == WeightStorageKind::kDense) {
    weight.add_(delta);
    return;
  }
  folded_from_ = storage_;
  storage_ = dense_storage(storage_->dense(storage_->compute_dtype()).add_(delta));
}

void Projection::fold_out(const at::Tensor& delta) {
  c10::NoGradGuard no_grad;
  if (folded_from_) {
    storage_ = std::move(folded_from_);
    folded_from_ = nullptr;
    return;
  }
  weight.sub_(delta);
}

}  // namespace retort
