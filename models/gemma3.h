// The Gemma 3 text decoder (Gemma3ForCausalLM): embeddings scaled by sqrt(hidden), RMSNorm with
// (1 + weight) computed in float32, norms before and after both attention and MLP, per-head q/k
// RMSNorm, GELU-tanh MLP, attention scaled by query_pre_attn_scalar^-1/2, local (sliding-window)
// and global layers with their own RoPE bases, tied embeddings.
// Reference: transformers models/gemma3/modeling_gemma3.py (Gemma3TextModel).
#pragma once

#include <torch/nn/modules/container/modulelist.h>

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

class Gemma3MLP : public torch::nn::Module {
 public:
  explicit Gemma3MLP(const ModelConfig& config);
  at::Tensor forward(const at::Tensor& x);  // down(gelu_tanh(gate(x)) * up(x))
  std::shared_ptr<Projection> gate_proj, up_proj, down_proj;
};

class Gemma3DecoderLayer : public DecoderLayer {
 public:
  explicit Gemma3DecoderLayer(const ModelConfig& config);
  at::Tensor forward(const at::Tensor& x, const LayerInputs& in, KVCache* cache, int64_t layer) override;

  std::shared_ptr<Gemma3RMSNorm> input_layernorm, post_attention_layernorm, pre_feedforward_layernorm,
      post_feedforward_layernorm;
  std::shared_ptr<Gemma3Attention> self_attn;
  std::shared_ptr<Gemma3MLP> mlp;
};

class Gemma3Body : public torch::nn::Module {  // HF "model."
 public:
  explicit Gemma3Body(const ModelConfig& config);
  at::Tensor embed_tokens_weight;  // registered as embed_tokens.weight
  torch::nn::ModuleList layers;
  std::shared_ptr<Gemma3RMSNorm> norm;
  std::vector<std::shared_ptr<Gemma3DecoderLayer>> layer_list;
};

class Gemma3ForCausalLM : public DecoderModel {
 public:
  explicit Gemma3ForCausalLM(const ModelConfig& config);

  at::Tensor forward_hidden(const at::Tensor& input_ids, const ForwardOptions& options) override;
  at::Tensor logits(const at::Tensor& hidden) override;
  const Projection& output_head() const override { return lm_head ? *lm_head : *tied_head_; }
  KVCache make_cache(int64_t batch, int64_t capacity) const override;

  std::shared_ptr<Gemma3Body> model;
  std::shared_ptr<Projection> lm_head;  // null when tied (Gemma 3 ties)

 private:
  std::shared_ptr<Projection> tied_head_;
};

}  // namespace retort
