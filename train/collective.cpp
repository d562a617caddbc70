#include "train/collective.h"

#include <ATen/ATen.h>

namespace retort {

// The scalar helpers skip the tensor round trip on one process, so a single-process run does
// exactly the arithmetic it did before collectives existed.
int64_t Collective::sum(int64_t value) {
  if (world_size() == 1) return value;
  at::Tensor tensor = at::full({1}, value, at::kLong);
  all_reduce_sum(tensor);
  return tensor.item<int64_t>();
}

double Collective::sum(double value) {
  if (world_size() == 1) return value;
  at::Tensor tensor = at::full({1}, value, at::kDouble);
  all_reduce_sum(tensor);
  return tensor.item<double>();
}

bool Collective::any(bool value) {
  if (world_size() == 1) return value;
  at::Tensor tensor = at::full({1}, value ? 1 : 0, at::kInt);
  all_reduce_max(tensor);
  return tensor.item<int>() != 0;
}

}  // namespace retort
