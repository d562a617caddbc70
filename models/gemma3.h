// The Gemma 3 text decoder (Gemma3ForCausalLM): embeddings scaled by sqrt(hidden), RMSNorm with
// (1 + weight) computed in float32, norms before and after both attention and MLP, per-head q/k
// RMSNorm, GELU-tanh MLP, attention scaled by query_pre_attn_scalar^-1/2, local (sliding-window)
// and global layers with their own RoPE bases, tied embeddings.
// Reference: transformers models/gemma3/modeling_gemma3.py (Gemma3TextModel).
#pragma once

#include "models/decoder.h"
#include "models/linear.h"

namespace retort {

// x * rsqrt(mean(x^2) + eps) * (1 + w), in float32, then back to x's dtype (the weight starts at 0).
class Gemma3RMSNorm : public torch::nn::Module {
 public:
  Gemma3RMSNorm(int64_t size, double eps);
  at::Tensor forward(const at::Tensor& x) const;
  at::Tensor weight;

 private:
  double eps_;
};

class Gemma3Attention : public torch::nn::Module {
 public:
  explicit Gemma3Attention(const ModelConfig& config);
  at::Tensor forward(const at::Tensor& x, const LayerInputs& in, KVCache* cache, int64_t layer);

  std::shared_ptr<Projection> q_proj, k_proj, v_proj, o_proj;
  std::shared_ptr<Gemma3RMSNorm> q_norm, k_norm;

 private:
  int64_t heads_, kv_heads_, head_dim_;
  double scale_;
};

class Gemma3DecoderLayer : public DecoderLayer {
 public:
  explicit Gemma3DecoderLayer(const ModelConfig& config);
  at::Tensor forward(const at::Tensor& x, const LayerInputs& in, KVCache* cache, int64_t layer) override;

  std::shared_ptr<Gemma3RMSNorm> input_layernorm, post_attention_layernorm, pre_feedforward_layernorm,
      post_feedforward_layernorm;
  std::shared_ptr<Gemma3Attention> self_attn;
  std::shared_ptr<GatedMLP> mlp;  // GELU-tanh
};

using Gemma3Body = DecoderBody<Gemma3DecoderLayer, Gemma3RMSNorm>;

class Gemma3ForCausalLM : public DecoderModel {
 public:
  explicit Gemma3ForCausalLM(const ModelConfig& config);
  at::Tensor forward_hidden(const at::Tensor& input_ids, const ForwardOptions& options) override;

  std::shared_ptr<Gemma3Body> model;
};

}  // namespace retort
