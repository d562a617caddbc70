// Losses as pure functions. Float32 softmax, ignore_index, normalised over the tokens that
// count. Reference: transformers loss_utils.py (ForCausalLMLoss).
#pragma once

#include <ATen/core/Tensor.h>

namespace retort {

inline constexpr int64_t kIgnoreIndex = -100;

struct TokenLoss {
  at::Tensor sum;  // scalar float32: summed cross-entropy over counted tokens
  int64_t tokens = 0;
  at::Tensor mean() const;
};

// Next-token cross-entropy: hidden [B, T, H] predicts labels shifted by one (labels [B, T],
// kIgnoreIndex where nothing is learned). The output projection `weight` [V, H] is applied
// `chunk_tokens` rows at a time; with autograd the gradients are formed chunk by chunk in the
// forward pass, so the float32 [tokens x V] logits are never all alive, forward or backward.
TokenLoss causal_lm_loss(const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& labels,
                         int64_t chunk_tokens = 1024);

}  // namespace retort
