// Loading a model from an HF directory (config.json + safetensors, sharded or not) or a
// .gguf file: the config, the architecture from the registry, and the weights, checked
// name by name and shape by shape.
#pragma once

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <functional>
#include <map>
#include <optional>
#include <memory>
#include <string>
#include <utility>

#include "models/bnb_checkpoint.h"
#include "models/causal_lm.h"
#include "models/quantized_storage.h"

namespace retort {

struct LoadOptions {
  at::ScalarType dtype = at::kFloat;
  c10::Device device = c10::kCPU;
  // The decoder layers' projections kept quantized in memory (frozen; embeddings, norms and the
  // output head stay dense in `dtype`), loaded one tensor at a time. `quantize_key` names the
  // setting in errors (model.quantize, --quantize, distill.teacher_quantize).
  BaseQuantization quantize = BaseQuantization::kNone;
  std::string quantize_key = "model.quantize";
};

struct LoadedModel {
  std::shared_ptr<CausalLM> model;
  std::string source;  // the path given
  bool from_gguf = false;
};

LoadedModel load_model(const std::string& path, const LoadOptions& options = {});

// A model for streaming conversions: the architecture with its parameters allocated but never
// written (so they take no memory), checked name by name and shape by shape against the file,
// and a reader that loads one parameter at a time from the file on CPU, in its stored dtype
// (safetensors) or as float32 (GGUF tensors, dequantized and un-permuted). Peak memory stays
// near the largest tensor.
struct LazyModel {
  std::shared_ptr<CausalLM> skeleton;  // do not read its parameters
  std::function<at::Tensor(const std::string& hf_name)> load;
  bool from_gguf = false;
  // GGUF only: a tensor's blocks as stored, uint8 [rows, row bytes], with its type; rows in the
  // order the model computes in (llama.cpp's Q/K row order undone).
  std::function<std::pair<GgmlType, at::Tensor>(const std::string& hf_name)> load_blocks;
  // bitsandbytes 4-bit checkpoints only: a weight's NF4 codes as stored (nullopt: stored plain).
  std::function<std::optional<StoredNf4>(const std::string& hf_name)> load_nf4;
};
LazyModel open_model_lazily(const std::string& path);

// The decoder layers' projections by their weight's name ("model.layers.0.mlp.up_proj.weight"):
// what `quantize` applies to.
std::map<std::string, Projection*> decoder_projection_weights(CausalLM& model);
// Loads one decoder projection from `lazy` into the storage options.quantize names, frozen, on
// options.device, computing in options.dtype. `keep` takes the GGUF blocks as stored (a tensor
// the file holds unquantized, F32/F16/BF16, stays dense); bad_input naming the tensor and
// options.quantize_key for a block type it cannot keep.
void load_quantized_projection(LazyModel& lazy, const std::string& name, Projection& projection,
                               const LoadOptions& options, const std::string& path);

// "float32" | "bfloat16" | "float16" (and short forms fp32, bf16, fp16, f32, f16).
at::ScalarType parse_dtype(const std::string& name);
// "cpu" | "cuda" | "cuda:N"; bad_input when CUDA is asked for but not usable.
c10::Device parse_device(const std::string& name);

// Copies `value` into the model parameter `name`, checking its shape against the config.
void assign_parameter(CausalLM& model, const std::string& name, const at::Tensor& value, const std::string& source);

}  // namespace retort
