// Float32 -> ggml tensor types, bit for bit as ggml's reference quantizers in ggml-quants.c
// (quantize_row_*_ref, what llama-quantize runs without an importance matrix) and gguf-py's
// quants.py for Q8_0/Q4_0, with the block layouts of docs/formats.md §3.6.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "io/gguf_dequant.h"

namespace retort {

// Types this file can write: F32, F16, BF16, Q8_0, Q4_0, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K.
bool ggml_type_quantizable(GgmlType type);
std::string ggml_quantizable_type_names();

// Bytes for `n_elements` values of `type` (a multiple of its block size).
uint64_t ggml_row_bytes(GgmlType type, int64_t n_elements);

// Encodes `n_elements` float32 values (a multiple of the type's block size) into `out`, which
// must hold ggml_row_bytes(type, n_elements). Parallel over blocks; the result does not depend
// on the thread count. Throws internal_error for a type ggml_type_quantizable rejects.
void quantize_from_float(GgmlType type, const float* values, int64_t n_elements, uint8_t* out);

// IEEE binary16 with round-to-nearest-even (ggml's GGML_FP32_TO_FP16, numpy's astype).
uint16_t fp32_to_fp16(float value);
// ggml_compute_fp32_to_bf16: round-to-nearest-even, NaN made quiet.
uint16_t fp32_to_bf16(float value);

}  // namespace retort
