#include "models/linear.h"

#include <ATen/ATen.h>

namespace retort {

Projection::Projection(int64_t in_features, int64_t out_features, bool bias)
    : in_features_(in_features), out_features_(out_features) {
  weight = register_parameter("weight", at::empty({out_features, in_features}));
  if (bias) this->bias = register_parameter("bias", at::zeros({out_features}));
}

at::Tensor Projection::forward_base(const at::Tensor& input) const {
  return at::linear(input, weight, bias.defined() ? std::optional<at::Tensor>(bias) : std::nullopt);
}

at::Tensor Projection::forward(const at::Tensor& input) const {
  return adapter ? adapter->forward(input, *this) : forward_base(input);
}

}  // namespace retort
