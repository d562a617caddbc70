// The decoder pieces any family builds on: RMSNorm, RoPE (frequencies per base, cos/sin tables),
// the attention mask (padding, packed segments, a sliding window), the attention inputs of each
// layer (layers with different windows or RoPE bases -- local and global attention -- get their
// own), activation checkpointing of a layer, and the KV cache.
// Reference: transformers models/llama/modeling_llama.py, modeling_rope_utils.py.
#pragma once

#include <torch/nn/module.h>

#include <functional>
#include <optional>
#include <utility>
#include <vector>

#include "models/causal_lm.h"
#include "models/config.h"

namespace retort {

class RMSNorm : public torch::nn::Module {
 public:
  RMSNorm(int64_t size, double eps);
  at::Tensor forward(const at::Tensor& x) const;  // [..., H]
  at::Tensor weight;

 private:
  double eps_;
};

// inv_freq [hd/2] float32 for the config's rope type at base `theta` (default: rope.theta),
// computed exactly as transformers does.
at::Tensor rope_inverse_frequencies(const ModelConfig& config, std::optional<double> theta = std::nullopt);
// inv_freq for every RoPE base the config's layers use.
std::vector<std::pair<double, at::Tensor>> rope_frequency_tables(const ModelConfig& config);

// x [B, h, T, hd] rotated: x * cos + rotate_half(x) * sin, with the sign folded into `signed_sin`.
at::Tensor apply_rope(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& signed_sin);

// The boolean attention mask [B, 1, T, S] (true = attend), or nullopt when SDPA's own causal flag
// (set in `causal`) is exact: no padding, no window reached, no segments, no cached prefix.
std::optional<at::Tensor> build_mask(std::optional<int64_t> window, int64_t batch, int64_t steps, int64_t past,
                                     const ForwardOptions& options, at::Device device, bool& causal);

// What a decoder layer's attention needs besides its input.
struct LayerInputs {
  at::Tensor cos, sin;  // [B, 1, T, hd], sin signed (see apply_rope)
  std::optional<at::Tensor> mask;
  bool causal = false;
};

class DecoderLayer : public torch::nn::Module {
 public:
  virtual at::Tensor forward(const at::Tensor& x, const LayerInputs& in, KVCache* cache, int64_t layer) = 0;
};

// The inputs of every layer of one forward pass, made once per distinct (window, RoPE base).
class AttentionInputs {
 public:
  AttentionInputs(const ModelConfig& config, const std::vector<std::pair<double, at::Tensor>>& inv_freqs,
                  const at::Tensor& positions, at::ScalarType dtype, int64_t batch, int64_t steps, int64_t past,
                  const ForwardOptions& options, at::Device device);
  const LayerInputs& of_layer(size_t layer) const { return inputs_[of_layer_[layer]]; }
  void move_to(at::Device device);  // a pipeline boundary

 private:
  static LayerInputs make_inputs(const LayerAttention& spec, const std::vector<std::pair<double, at::Tensor>>& inv_freqs,
                                 const at::Tensor& positions, at::ScalarType dtype, int64_t batch, int64_t steps,
                                 int64_t past, const ForwardOptions& options, at::Device device);
  std::vector<LayerAttention> specs_;
  std::vector<LayerInputs> inputs_;
  std::vector<size_t> of_layer_;
};

// layer->forward as a checkpoint (torch.utils.checkpoint, reentrant): activations are recomputed
// in backward, with the random state of the forward. `anchor` requires grad (see decoder.cpp).
at::Tensor checkpointed_layer(DecoderLayer& layer, const at::Tensor& x, const at::Tensor& anchor, const LayerInputs& in,
                              int64_t index);

// Empty keys and values [B, kv_heads, capacity, hd] for every layer.
KVCache make_kv_cache(const ModelConfig& config, int64_t batch, int64_t capacity, const at::TensorOptions& options);

// The forward pass every decoder-only family shares, around its own embedding, layers and final
// norm: positions (given, or after the cache), the attention inputs of each distinct layer
// attention, activation checkpointing, pipeline devices, and the cache length.
class DecoderModel : public CausalLM {
 public:
  explicit DecoderModel(const ModelConfig& config);
  const ModelConfig& config() const override { return config_; }

 protected:
  // input_ids [B, T] -> the residual stream after the last layer [B, T, H] (before the final
  // norm). `embed` maps ids (on the embedding's device) to [B, T, H].
  at::Tensor run_layers(const at::Tensor& input_ids, const ForwardOptions& options, const at::Device& embedding_device,
                        const std::function<at::Tensor(const at::Tensor&)>& embed);
  // Registers layer i of the stack (in order), already a submodule of the derived model.
  void add_decoder_layer(DecoderLayer* layer) { stack_.push_back(layer); }

  ModelConfig config_;

 private:
  std::vector<DecoderLayer*> stack_;
  // inv_freq [hd/2] per RoPE base, float32; not buffers, so model->to(dtype) leaves them float32.
  std::vector<std::pair<double, at::Tensor>> inv_freqs_;
  at::Tensor checkpoint_anchor_;  // see checkpointed_layer
};

}  // namespace retort
