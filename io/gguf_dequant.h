// ggml tensor types (ids, block sizes) and their dequantization to float32, bit for bit as
// ggml's reference dequantize_row_* in ggml-quants.c (layouts: ggml-common.h, docs/formats.md §3.6).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace retort {

// The ids of ggml.h's enum ggml_type. The values keep ggml's spelling (Q4_K, BF16, ...) because
// those names are what users see in llama.cpp, gguf-py and file names. Ids 4, 5, 31-33 and 36-38
// are retired and have no entry.
enum class GgmlType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  IQ2_XXS = 16,
  IQ2_XS = 17,
  IQ3_XXS = 18,
  IQ1_S = 19,
  IQ4_NL = 20,
  IQ3_S = 21,
  IQ2_S = 22,
  IQ4_XS = 23,
  I8 = 24,
  I16 = 25,
  I32 = 26,
  I64 = 27,
  F64 = 28,
  IQ1_M = 29,
  BF16 = 30,
  TQ1_0 = 34,
  TQ2_0 = 35,
  MXFP4 = 39,
  NVFP4 = 40,
  Q1_0 = 41,
};

// Every known type has a block layout, so a file holding types we cannot dequantize still
// opens and lists them; only loading such a tensor fails.
struct GgmlTypeInfo {
  GgmlType type;
  const char* name;    // "Q4_K"
  int64_t block_size;  // elements per block
  int64_t type_size;   // bytes per block
  bool dequantizable;  // dequantize_to_float handles it
};

// nullptr for ids that are unknown or retired.
const GgmlTypeInfo* find_ggml_type(uint32_t id);
// For a valid enum value; throws internal_error for a value outside the enum.
const GgmlTypeInfo& ggml_type_info(GgmlType type);
std::string ggml_type_name(GgmlType type);

// "F32, F16, BF16, Q8_0, ..." for error messages.
std::string ggml_dequantizable_type_names();

// Dequantizes `n_elements` values of `type` (a multiple of its block size; the blocks are read
// densely from `data`, which needs no alignment) into `out`, in parallel over blocks with
// at::parallel_for. Throws bad_input "tensor type X is not supported; supported: ..." for types
// it cannot dequantize; the caller adds the tensor name and file.
void dequantize_to_float(GgmlType type, const uint8_t* data, int64_t n_elements, float* out);

// IEEE binary16 bits -> float32, exact for every input including subnormals, infinities and
// NaN payloads (the same bits numpy's float16 -> float32 cast gives).
float fp16_to_fp32(uint16_t bits);

}  // namespace retort
