// Frozen bases kept quantized in memory (QLoRA): a projection's weight stays NF4 or in a GGUF
// file's own blocks, and is dequantized one projection at a time when it computes. The product
// runs through an autograd function that keeps no dense weight for the backward pass: it
// dequantizes again there (as bitsandbytes' MatMul4Bit does), so a training step holds the
// dense form of one projection at a time, never of the model.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <string>

#include "io/gguf_dequant.h"
#include "models/linear.h"
#include "models/nf4.h"

namespace retort {

// What `model.quantize` (and `distill.teacher_quantize`) ask for.
enum class BaseQuantization { kNone, kInt8, kNf4, kKeep };
// "none" | "int8" | "nf4" | "keep"; bad_input naming `key` otherwise.
BaseQuantization parse_base_quantization(const std::string& name, const std::string& key);
std::string base_quantization_name(BaseQuantization quantization);

// The GGUF block types `keep` holds as stored (quantized types Retort dequantizes), and whether
// a type is one of them.
bool keepable_ggml_type(GgmlType type);
std::string keepable_ggml_type_names();

// Replaces the projection's weight by its NF4 form (bitsandbytes' layout), frozen, on `device`;
// it computes in `compute_dtype`. The bias (if any) is frozen and converted too.
void quantize_projection_nf4(Projection& projection, at::ScalarType compute_dtype, at::Device device);
// The same from NF4 data already made (a bitsandbytes checkpoint's), for a weight of the
// projection's shape.
void use_nf4_tensor(Projection& projection, Nf4Tensor tensor, at::ScalarType compute_dtype, at::Device device);

// A decoder projection's weight [out, in] as a base quantized with `quantization` computes it
// (float32): quantized and dequantized exactly as loading with that setting does. `none` and
// `keep` return it unchanged (keep's base is the file's own blocks, which `weight` already is).
at::Tensor as_quantized_base(const at::Tensor& weight, BaseQuantization quantization, at::ScalarType compute_dtype);

// Makes the projection hold a GGUF tensor's blocks as stored: `blocks` uint8 [out, row bytes],
// rows already in the order the model computes in. Frozen, computes in `compute_dtype`.
void keep_projection_blocks(Projection& projection, GgmlType type, const at::Tensor& blocks,
                            at::ScalarType compute_dtype, at::Device device);

}  // namespace retort
