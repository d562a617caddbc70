// Losses as pure functions. Float32 softmax, ignore_index, normalised over the tokens that
// count. Reference: transformers loss_utils.py (ForCausalLMLoss).
#pragma once

#include <ATen/core/Tensor.h>

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "data/batch.h"
#include "models/linear.h"

namespace retort {

struct TokenLoss {
  at::Tensor sum;  // scalar float32: summed cross-entropy over counted tokens
  int64_t tokens = 0;
  // Named parts of a composite loss (detached float32 sums over the same tokens), for the logs.
  std::vector<std::pair<std::string, at::Tensor>> parts = {};
  at::Tensor mean() const;
};

// Next-token cross-entropy: hidden [B, T, H] predicts labels shifted by one (labels [B, T],
// kIgnoreIndex where nothing is learned). The output projection `head` [V, H] (its base weight) is applied
// `chunk_tokens` rows at a time; with autograd the gradients are formed chunk by chunk in the
// forward pass, so the float32 [tokens x V] logits are never all alive, forward or backward.
// chunk_tokens 0: as many rows as keep one chunk's logits near 64M values (256 MB in float32):
// 1024 rows up to a 64k vocabulary, 256 for Gemma's 262k.
TokenLoss causal_lm_loss(const at::Tensor& hidden, const Projection& head, const at::Tensor& labels,
                         int64_t chunk_tokens = 0);

// The summed loss of logits = inputs @ W^T (inputs [N, H], the head's weight W [V, H], dense or
// quantized) taken `chunk_tokens` rows at a time: `chunk_loss(logits [n, V] float32, start)` returns
// the scalar loss of rows [start, start + n). With autograd, each chunk's gradient is formed right
// away (autograd on the chunk alone) and folded into the gradients of inputs and of a trainable
// dense W, so the float32 [N x V] logits,
// and whatever the loss needs besides them (a teacher's logits), are never alive all at once.
using ChunkLoss = std::function<at::Tensor(const at::Tensor& logits, int64_t start)>;
at::Tensor chunked_linear_loss(const at::Tensor& inputs, const Projection& head, const ChunkLoss& chunk_loss,
                               int64_t chunk_tokens = 1024);

}  // namespace retort
