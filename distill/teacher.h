// Loading a frozen teacher that may not fit one GPU in bfloat16: weights streamed from the file one
// tensor at a time, decoder projections optionally kept quantized (int8 rows: a 70B teacher in
// about 70 GB instead of 140; nf4: about 38 GB; keep: a GGUF teacher's blocks as stored), and
// decoder layers optionally spread over
// several devices in contiguous blocks (a per-layer device map; CausalLM::set_layer_devices).
#pragma once

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <string>
#include <vector>

#include "models/loader.h"

namespace retort {

struct TeacherLoadOptions {
  at::ScalarType dtype = at::kBFloat16;  // activations, and weights that are not quantised
  BaseQuantization quantize = BaseQuantization::kNone;  // decoder projections kept quantized
  std::vector<c10::Device> devices = {c10::kCPU};  // layers split evenly in order; embedding first, head last
};

// The device of each of `layers` decoder layers: contiguous, near-equal blocks in `devices` order.
std::vector<c10::Device> split_layers(int64_t layers, const std::vector<c10::Device>& devices);

LoadedModel load_teacher(const std::string& path, const TeacherLoadOptions& options);

// Bytes of the model's parameters and buffers (what its weights take on their devices).
int64_t weight_bytes(CausalLM& model);

}  // namespace retort
