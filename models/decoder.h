// The decoder pieces any family builds on: RMSNorm, RoPE (frequencies per base, cos/sin tables),
// the attention mask (padding, packed segments, a sliding window), the attention inputs of each
// layer (layers with different windows or RoPE bases -- local and global attention -- get their
// own), activation checkpointing of a layer, and the KV cache.
// Reference: transformers models/llama/modeling_llama.py, modeling_rope_utils.py.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>

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
// computed exactly as transformers does; `scaled` false: plain RoPE, the config's scaling ignored.
at::Tensor rope_inverse_frequencies(const ModelConfig& config, std::optional<double> theta = std::nullopt,
                                    bool scaled = true);
// One RoPE the layers use: a base, with or without the model's scaling.
struct RopeFrequencies {
  double theta = 0;
  bool scaled = true;
  at::Tensor inv_freq;
  bool serves(const LayerAttention& spec) const { return theta == *spec.rope_theta && scaled == spec.scaled_rope; }
};
// inv_freq for every RoPE the config's layers use.
std::vector<RopeFrequencies> rope_frequency_tables(const ModelConfig& config);

// x [B, h, T, hd] rotated: x * cos + rotate_half(x) * sin, with the sign folded into `signed_sin`.
at::Tensor apply_rope(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& signed_sin);

// Whether a forward pass has padding or rows holding several packed segments: read once per pass
// (each is a device sync), shared by the masks of every layer attention.
struct MaskFacts {
  bool padded = false;
  bool segmented = false;
};
MaskFacts mask_facts(const ForwardOptions& options);

// The boolean attention mask [B, 1, T, S] (true = attend), or nullopt when SDPA's own causal flag
// (set in `causal`) is exact: no padding, no window reached, no segments, no cached prefix.
std::optional<at::Tensor> build_mask(std::optional<int64_t> window, const MaskFacts& facts, int64_t batch,
                                     int64_t steps, int64_t past, const ForwardOptions& options, at::Device device,
                                     bool& causal);

// What a decoder layer's attention needs besides its input.
struct LayerInputs {
  at::Tensor cos, sin;  // [B, 1, T, hd], sin signed (see apply_rope)
  std::optional<at::Tensor> mask;
  bool causal = false;
};

// q [B, h, T, hd] and k, v [B, kv, T, hd] of one layer: rotates q and k, appends k and v to the
// cache's layer (attending over everything cached), attends through SDPA with `scale` (grouped
// heads when kv < h); returns [B, T, h * hd] for the output projection.
at::Tensor rotate_and_attend(at::Tensor q, at::Tensor k, at::Tensor v, const LayerInputs& in, KVCache* cache,
                             int64_t layer, double scale);

// down(act(gate(x)) * up(x)): Llama's SwiGLU (SiLU), Gemma's GeGLU (GELU, tanh approximation).
enum class MlpActivation { kSilu, kGeluTanh };
class GatedMLP : public torch::nn::Module {
 public:
  GatedMLP(const ModelConfig& config, MlpActivation activation);
  at::Tensor forward(const at::Tensor& x);
  std::shared_ptr<Projection> gate_proj, up_proj, down_proj;

 private:
  MlpActivation activation_;
};

class DecoderLayer : public torch::nn::Module {
 public:
  virtual at::Tensor forward(const at::Tensor& x, const LayerInputs& in, KVCache* cache, int64_t layer) = 0;
};

// The inputs of every layer of one forward pass, made once per distinct (window, RoPE base).
class AttentionInputs {
 public:
  AttentionInputs(const ModelConfig& config, const std::vector<RopeFrequencies>& inv_freqs,
                  const at::Tensor& positions, at::ScalarType dtype, int64_t batch, int64_t steps, int64_t past,
                  const ForwardOptions& options, at::Device device);
  const LayerInputs& of_layer(size_t layer) const { return inputs_[of_layer_[layer]]; }
  void move_to(at::Device device);  // a pipeline boundary

 private:
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

// HF "model.": the token embedding, the decoder layers and the final norm, for any family's layer
// and norm types.
template <typename Layer, typename Norm>
class DecoderBody : public torch::nn::Module {
 public:
  explicit DecoderBody(const ModelConfig& config) {
    auto embed = register_module("embed_tokens", std::make_shared<torch::nn::Module>("Embedding"));
    embed_tokens_weight = embed->register_parameter("weight", at::empty({config.vocab_size, config.hidden_size}));
    layers = register_module("layers", torch::nn::ModuleList());
    for (int64_t i = 0; i < config.num_hidden_layers; ++i) {
      layer_list.push_back(std::make_shared<Layer>(config));
      layers->push_back(layer_list.back());
    }
    norm = register_module("norm", std::make_shared<Norm>(config.hidden_size, config.rms_norm_eps));
  }
  at::Tensor embed_tokens_weight;  // registered as embed_tokens.weight
  torch::nn::ModuleList layers;
  std::shared_ptr<Norm> norm;
  std::vector<std::shared_ptr<Layer>> layer_list;
};

// What every decoder-only family shares around its own embedding, layers and final norm: the
// forward pass (positions, the attention inputs of each distinct layer attention, activation
// checkpointing, pipeline devices, the cache length), the output head and the KV cache.
class DecoderModel : public CausalLM {
 public:
  explicit DecoderModel(const ModelConfig& config);
  const ModelConfig& config() const override { return config_; }
  at::Tensor logits(const at::Tensor& hidden) override;
  const Projection& output_head() const override { return lm_head ? *lm_head : *tied_head_; }
  KVCache make_cache(int64_t batch, int64_t capacity) const override;

  std::shared_ptr<Projection> lm_head;  // null when tied

 protected:
  // Called by the derived constructor once its body is registered: the layers in order, and the
  // output head (lm_head, registered after the body, when untied; else over the embedding).
  template <typename Body>
  void adopt_body(const Body& body) {
    for (const auto& layer : body.layer_list) stack_.push_back(layer.get());
    adopt_embedding(body.embed_tokens_weight);
  }
  // input_ids [B, T] -> the residual stream after the last layer [B, T, H] (before the final
  // norm). `embed` maps ids (on the embedding's device) to [B, T, H].
  at::Tensor run_layers(const at::Tensor& input_ids, const ForwardOptions& options,
                        const std::function<at::Tensor(const at::Tensor&)>& embed);

  ModelConfig config_;
  at::Tensor embedding_;  // the body's embed_tokens.weight

 private:
  void adopt_embedding(const at::Tensor& embedding);

  std::vector<DecoderLayer*> stack_;
  std::shared_ptr<Projection> tied_head_;  // over the embedding when tied (not registered)
  // inv_freq [hd/2] per RoPE base, float32; not buffers, so model->to(dtype) leaves them float32.
  std::vector<RopeFrequencies> inv_freqs_;
  at::Tensor checkpoint_anchor_;  // see checkpointed_layer
};

}  // namespace retort
