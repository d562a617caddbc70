#include "train/losses.h"

#include <ATen/ATen.h>

namespace retort {

at::Tensor TokenLoss::mean() const { return sum / static_cast<double>(std::max<int64_t>(tokens, 1)); }

TokenLoss causal_lm_loss(const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& labels,
                         int64_t chunk_tokens) {
  const int64_t width = hidden.size(-1);
  // Shift: position t predicts label t+1.
  const at::Tensor inputs = hidden.narrow(1, 0, hidden.size(1) - 1).reshape({-1, width});
  const at::Tensor targets = labels.narrow(1, 1, labels.size(1) - 1).reshape({-1}).to(hidden.device());
  const at::Tensor counted = targets != kIgnoreIndex;
  TokenLoss loss;
  loss.tokens = counted.sum().item<int64_t>();
  loss.sum = at::zeros({}, hidden.options().dtype(at::kFloat));
  for (int64_t start = 0; start < inputs.size(0); start += chunk_tokens) {
    const int64_t rows = std::min(chunk_tokens, inputs.size(0) - start);
    const at::Tensor logits = at::linear(inputs.narrow(0, start, rows), weight).to(at::kFloat);
    loss.sum = loss.sum + at::cross_entropy_loss(logits, targets.narrow(0, start, rows), std::nullopt,
                                                 at::Reduction::Sum, kIgnoreIndex);
  }
  return loss;
}

}  // namespace retort
