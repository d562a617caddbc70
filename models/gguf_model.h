// Models from .gguf files: ModelConfig rebuilt from GGUF metadata, and the weights
// dequantized, renamed to HF names and un-permuted (llama.cpp's Q/K row order for arch llama).
// Reference: llama.cpp convert_hf_to_gguf.py (the inverse of what it does), docs/formats.md §2-3.
#pragma once

#include <ATen/core/Tensor.h>

#include <string>

#include "io/gguf.h"
#include "models/config.h"
#include "models/loader.h"

namespace retort {

ModelConfig config_from_gguf(const GgufFile& file);

// GGUF rows [n*hd, ...] in llama.cpp's interleaved rope order -> HF's half-split order.
at::Tensor unpermute_gguf_qk(const at::Tensor& weight, int64_t heads);

LoadedModel load_gguf_model(const std::string& path, const LoadOptions& options);
LazyModel open_gguf_model_lazily(const std::string& path);

}  // namespace retort
