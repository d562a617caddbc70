#include "models/linear.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include "models/gemm.h"

namespace retort {

Projection::Projection(int64_t in_features, int64_t out_features, bool bias)
    : in_features_(in_features), out_features_(out_features) {
  weight = register_parameter("weight", at::empty({out_features, in_features}));
  if (bias) this->bias = register_parameter("bias", at::zeros({out_features}));
}

at::Tensor Projection::forward_base(const at::Tensor& input) const {
  const std::optional<at::Tensor> b = bias.defined() ? std::optional<at::Tensor>(bias) : std::nullopt;
  if (!weight_scale.defined()) return gemm_linear(input, weight, b);
  // One layer's weight is widened at a time; the product is exact in the integers' scale, then
  // each output channel takes its scale (cheaper than scaling the [out, in] weight).
  at::Tensor out = gemm_linear(input, weight.to(input.scalar_type())).mul_(weight_scale);
  return b ? out.add_(*b) : out;
}

void Projection::quantize_int8(at::ScalarType activation_dtype) {
  c10::NoGradGuard no_grad;
  const at::Tensor w = weight.to(at::kFloat);
  const at::Tensor scale = at::clamp_min(w.abs().amax(1) / 127.0, 1e-12);  // [out]
  const at::Tensor q = at::round(w / scale.unsqueeze(1)).clamp_(-127, 127).to(at::kChar);
  weight.set_requires_grad(false);
  weight.set_data(q);
  weight_scale = register_buffer("weight_scale", scale.to(activation_dtype));
  if (bias.defined()) {
    bias.set_requires_grad(false);
    bias.set_data(bias.to(activation_dtype));
  }
}

at::Tensor Projection::forward(const at::Tensor& input) const {
  return adapter ? adapter->forward(input, *this) : forward_base(input);
}

}  // namespace retort
