// Checkpoints transformers saved from a bitsandbytes 4-bit model (BitsAndBytesConfig with
// load_in_4bit, bnb_4bit_quant_type "nf4", bnb_4bit_use_double_quant): each quantized Linear's
// "X.weight" is its packed NF4 codes (uint8 [numel / 2, 1]) beside X.weight.absmax (8-bit codes),
// .nested_absmax, .nested_quant_map, .quant_map and .quant_state.bitsandbytes__nf4 (JSON bytes:
// shape, blocksize, nested_offset, ...). Such weights load as they are stored (model.quantize nf4:
// bit for bit what bitsandbytes computes with) or dequantized (any other setting).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "models/nf4.h"

namespace retort {

// Whether `model_dir`'s config.json says bitsandbytes quantized it; bad_input naming the key for
// the variants Retort cannot read (8-bit, fp4, no double quantization, other block sizes).
bool is_bnb_4bit_checkpoint(const std::string& model_dir);

// Whether `name` is a tensor bitsandbytes keeps beside a quantized weight ("X.weight.absmax").
bool is_bnb_quant_state_tensor(const std::string& name);

// The NF4 form of `name` ("...q_proj.weight") when the checkpoint stores it quantized, with its
// shape [out, in] from the quant state; nullopt when it is stored as a plain tensor. bad_input
// naming the file and tensor for a malformed quant state.
struct StoredNf4 {
  Nf4Tensor tensor;
  std::vector<int64_t> shape;
};
std::optional<StoredNf4> read_bnb_nf4(const SafetensorsCheckpoint& checkpoint, const std::string& name);

}  // namespace retort
