// Qwen3 (dense): the Llama decoder with RMSNorm over each head's queries and keys before RoPE,
// no q/k/v bias (unless attention_bias), an explicit head_dim (often not hidden/heads), tied or
// untied embeddings by size, NEOX-style rope, optionally sliding-window layers as in Qwen2.
// Reference: transformers models/qwen3/modeling_qwen3.py; llama.cpp's LLM_ARCH_QWEN3 tensors.
#pragma once

#include "models/family.h"

namespace retort {

ModelFamily qwen3_family();

}  // namespace retort
