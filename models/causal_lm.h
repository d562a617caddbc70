// The interface every decoder family implements, plus the KV cache they share.
// Parameter names are the HF checkpoint names (named_parameters() == state-dict keys).
#pragma once

#include <torch/nn/module.h>

#include <optional>
#include <string>
#include <vector>

#include "models/config.h"
#include "models/linear.h"

namespace retort {

// Per-layer key/value buffers preallocated to `capacity` positions: [B, n_kv, capacity, hd].
struct KVCache {
  std::vector<at::Tensor> keys;
  std::vector<at::Tensor> values;
  int64_t length = 0;  // positions filled so far
  int64_t capacity = 0;
};

struct ForwardOptions {
  at::Tensor position_ids;    // [B, T] int64; default: cache length + arange(T)
  at::Tensor attention_mask;  // [B, S] with S = past + T, 1 = token, 0 = padding; optional
  // [B, T] int64, packed rows: a token attends only to earlier tokens of its own segment
  // (block-diagonal causal attention); optional, not with a cache.
  at::Tensor segment_ids;
  KVCache* cache = nullptr;   // read and extended when given
  // When given, receives the residual stream entering each decoder layer and leaving the last one
  // (num_layers + 1 tensors [B, T, H], before the final norm): for layer-importance measures.
  std::vector<at::Tensor>* layer_states = nullptr;
};

struct ModelFamily;

class CausalLM : public torch::nn::Module {
 public:
  virtual const ModelConfig& config() const = 0;

  // input_ids [B, T] -> final hidden states [B, T, H] (after the last norm).
  virtual at::Tensor forward_hidden(const at::Tensor& input_ids, const ForwardOptions& options) = 0;
  // hidden [..., H] -> logits [..., V] in the model's dtype.
  virtual at::Tensor logits(const at::Tensor& hidden) = 0;
  // The output projection [V, H] (over the embedding when tied): every logits computation --
  // chunked losses, distillation, a teacher cache, generation -- goes through it.
  virtual const Projection& output_head() const = 0;

  virtual KVCache make_cache(int64_t batch, int64_t capacity) const = 0;

  // The family that built this model (models/family.h), set by create_model.
  const ModelFamily& family() const;
  void set_family(const ModelFamily& family) { family_ = &family; }
  // HF name -> GGUF name for this family (e.g. "model.norm.weight" -> "output_norm.weight").
  std::string gguf_tensor_name(const std::string& hf_name) const;
  // Whether the GGUF tensor for `hf_name` has llama.cpp's Q/K row permutation, and its head count.
  std::optional<int64_t> gguf_permuted_heads(const std::string& hf_name) const;
  // GGUF general.architecture of this model ("llama", "qwen2").
  const std::string& gguf_architecture() const;

  at::Tensor forward_logits(const at::Tensor& input_ids, const ForwardOptions& options = {}) {
    return logits(forward_hidden(input_ids, options));
  }
  at::ScalarType dtype() const;
  at::Device device() const;

  // Activation checkpointing per decoder layer: with gradients on, a layer keeps only its input
  // and recomputes its activations in the backward pass (less memory, about one more forward).
  void set_activation_checkpointing(bool enabled) { activation_checkpointing_ = enabled; }
  bool activation_checkpointing() const { return activation_checkpointing_; }

  // Pipeline placement for a model bigger than one GPU: decoder layer i runs on devices[i] (its
  // parameters must already be there), the embedding on its own weight's device, the final norm
  // and output projection on the last layer's; hidden states move at each device boundary.
  // Empty: everything on one device. Not with a KV cache.
  void set_layer_devices(std::vector<c10::Device> devices) { layer_devices_ = std::move(devices); }
  const std::vector<c10::Device>& layer_devices() const { return layer_devices_; }

 protected:
  bool activation_checkpointing_ = false;
  std::vector<c10::Device> layer_devices_;
  const ModelFamily* family_ = nullptr;
};

}  // namespace retort
