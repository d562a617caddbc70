// NF4 ("4-bit NormalFloat", QLoRA: Dettmers et al. 2023, arXiv:2305.14314) exactly as
// bitsandbytes stores it: 16 code values, weights in blocks of 64 scaled by their absolute
// maximum, two codes per byte (the first of each pair in the high nibble), and the float32 block
// maxima themselves double-quantized: their mean subtracted (the offset), then 8-bit codes of the
// signed "dynamic" map in blocks of 256, each block with its own float32 absmax. Layout and
// rounding: docs/quantized-bases.md.
#pragma once

#include <ATen/core/Tensor.h>

#include <array>
#include <cstdint>

namespace retort {

constexpr int64_t kNf4BlockSize = 64;
constexpr int64_t kNf4AbsmaxBlockSize = 256;

// The 16 NF4 values, ascending (index 7 is 0).
const std::array<float, 16>& nf4_code_values();
// bitsandbytes' signed 8-bit dynamic map (create_dynamic_map(signed=True)): 256 ascending values
// from -0.99297 to 1.
const std::array<float, 256>& dynamic_map_values();

struct Nf4Tensor {
  at::Tensor codes;          // uint8 [numel / 2]: two 4-bit codes per byte
  at::Tensor absmax_codes;   // uint8 [blocks]: each block's absmax, 8-bit coded after the offset
  at::Tensor absmax_scales;  // float32 [ceil(blocks / 256)]: the absmax codes' block maxima
  at::Tensor absmax_offset;  // float32 [1]: the mean of the float32 block maxima
};

// Quantizes a float tensor with an even element count that is a multiple of 64 (what every
// projection of the supported families has); bad_input otherwise. Runs on CPU in float32.
Nf4Tensor quantize_nf4(const at::Tensor& weight);

// The float32 block maxima back from their 8-bit codes: code[q] * scale + offset.
at::Tensor nf4_block_absmax(const Nf4Tensor& tensor);

// Dequantizes `numel` values into `out` (float32, contiguous, on the CPU) given the block maxima
// from nf4_block_absmax: code[nibble] * absmax, in float32.
void dequantize_nf4_into(const at::Tensor& codes, const at::Tensor& block_absmax, float* out, int64_t numel);
// The same with ATen operations on any device, in float32.
at::Tensor dequantize_nf4(const Nf4Tensor& tensor, int64_t numel);

}  // namespace retort
