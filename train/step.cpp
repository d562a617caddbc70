#include "train/step.h"

#include <ATen/ATen.h>

namespace retort {

std::vector<at::Tensor> TrainingStep::trainable_parameters() {
  std::vector<at::Tensor> out;
  for (auto& [name, tensor] : named_trainable_parameters()) out.push_back(tensor);
  return out;
}

ForwardOptions batch_forward_options(const Batch& batch) {
  ForwardOptions options;
  options.attention_mask = batch.attention_mask;
  options.position_ids = batch.position_ids;
  options.segment_ids = batch.segment_ids;
  return options;
}

at::Tensor predicting_rows(const at::Tensor& hidden, const at::Tensor& counted) {
  const at::Tensor inputs = hidden.narrow(1, 0, hidden.size(1) - 1).reshape({-1, hidden.size(-1)});
  return inputs.index_select(0, counted);
}

}  // namespace retort
