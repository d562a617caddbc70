// Inverted dropout for LoRA inputs with a counter-based random stream: element i keeps its value
// (scaled by 1 / (1 - p)) unless 16 bits of splitmix64(seed, i / 4) fall below p * 65536. The
// seed is drawn from the default CPU generator (so checkpoints restore it) and the backward pass
// regenerates the mask from it: no mask is stored and no per-element Bernoulli sampling is done
// (at::bernoulli_ took 13% of a LoRA step on CPU). p is rounded to a multiple of 1/65536.
#pragma once

#include <ATen/core/Tensor.h>

namespace retort {

// Training-mode dropout; float32 CPU tensors take the fast path, anything else at::dropout.
at::Tensor lora_dropout(const at::Tensor& input, double p);

}  // namespace retort
