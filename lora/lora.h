// LoRA and DoRA on the one linear choke point (models/linear.h): an adapter attached to a
// Projection adds scaling * B(A(dropout(x))) (DoRA: also rescales by a learned magnitude).
// Reference: peft tuners/lora/layer.py (Linear.forward, DoRA in tuners/lora/dora.py).
#pragma once

#include <ATen/core/Tensor.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "models/causal_lm.h"
#include "models/linear.h"

namespace retort {

struct LoraSpec {
  int64_t rank = 8;
  double alpha = 8.0;
  double dropout = 0.0;
  bool use_rslora = false;  // scaling alpha / sqrt(r) instead of alpha / r
  bool use_dora = false;
  double scaling() const;
};

class LoraAdapter : public ProjectionAdapter {
 public:
  LoraAdapter(const Projection& base, const LoraSpec& spec);

  at::Tensor forward(const at::Tensor& input, const Projection& base) override;
  // Delta W = scaling * B @ A  [out, in] (DoRA: the full merged weight minus W, so it needs the
  // base weight W [out, in]).
  at::Tensor merged_delta(const at::Tensor& base_weight) const;

  LoraSpec spec;
  at::Tensor lora_a;     // [r, in]
  at::Tensor lora_b;     // [out, r]
  at::Tensor magnitude;  // [out], DoRA only
  bool training = false;
  // Merged into the base weight (see merge_adapters): the projection computes W' x alone.
  bool merged = false;
  at::Tensor merged_weight_delta;  // what was added to the weight, in its dtype, for unmerging
};

// Attaches fresh adapters (A Kaiming-uniform as nn.Linear, B zeros) to projections whose last
// name component is in `targets` (e.g. "q_proj"); returns how many were attached.
int64_t attach_lora(CausalLM& model, const LoraSpec& spec, const std::vector<std::string>& targets, uint64_t seed);

// Folds every adapter into its base weight (W += delta) so inference runs at base speed, or
// takes it back out (W -= the same delta: exact inverses up to one rounding). Returns how many
// adapters changed state.
int64_t merge_adapters(CausalLM& model);
int64_t unmerge_adapters(CausalLM& model);
// The same for one projection; false when it has no adapter in the other state. On a quantized
// base the merged weight is a dense copy (dequantized + delta) until unmerging restores the base.
bool merge_adapter(Projection& projection);
bool unmerge_adapter(Projection& projection);

struct LoadedAdapter {
  LoraSpec spec;
  std::vector<std::string> target_modules;  // module paths that received an adapter
  std::string base_model_name_or_path;
};

// Loads a PEFT adapter directory (adapter_config.json + adapter_model.safetensors) onto
// `model`'s projections. Bad input names the file and key or tensor.
LoadedAdapter load_peft_adapter(CausalLM& model, const std::string& adapter_dir);

// Writes the model's adapters as a PEFT adapter directory (adapter_config.json +
// adapter_model.safetensors, float32), atomically: a temp directory renamed into place.
void write_peft_adapter(CausalLM& model, const LoraSpec& spec, const std::vector<std::string>& target_modules,
                        const std::string& base_model_name_or_path, const std::string& directory);

// What a training step updates: the adapters (A, B, DoRA magnitude, under PEFT's names) when the
// model carries any, the base frozen; otherwise every parameter (HF names). Sets requires_grad.
std::vector<std::pair<std::string, at::Tensor>> prepare_trainable_parameters(CausalLM& model);
// LoRA dropout on (training) or off, for every adapter.
void set_lora_training(CausalLM& model, bool training);

// Every Projection in the model by module path ("model.layers.0.self_attn.q_proj").
std::map<std::string, std::shared_ptr<Projection>> projections_of(CausalLM& model);

}  // namespace retort
