// The Llama-family decoder: LlamaForCausalLM (Llama 2, 3, 3.1/3.2 rope), MistralForCausalLM,
// Qwen2ForCausalLM (q/k/v biases) and Qwen3ForCausalLM (per-head q/k RMSNorm). RMSNorm, RoPE,
// grouped-query attention through at::scaled_dot_product_attention, SwiGLU MLP, optional tied
// embeddings. Reference: transformers models/llama/modeling_llama.py (and mistral, qwen2, qwen3).
#pragma once

#include "models/causal_lm.h"
#include "models/decoder.h"
#include "models/linear.h"

namespace retort {

class LlamaAttention : public torch::nn::Module {
 public:
  explicit LlamaAttention(const ModelConfig& config);
  // x [B, T, H] -> [B, T, H]
  at::Tensor forward(const at::Tensor& x, const LayerInputs& in, KVCache* cache, int64_t layer);

  std::shared_ptr<Projection> q_proj, k_proj, v_proj, o_proj;
  std::shared_ptr<RMSNorm> q_norm, k_norm;  // over head_dim, before RoPE; null unless config.qk_norm

 private:
  int64_t heads_, kv_heads_, head_dim_;
};

class LlamaDecoderLayer : public DecoderLayer {
 public:
  explicit LlamaDecoderLayer(const ModelConfig& config);
  at::Tensor forward(const at::Tensor& x, const LayerInputs& in, KVCache* cache, int64_t layer) override;

  std::shared_ptr<RMSNorm> input_layernorm, post_attention_layernorm;
  std::shared_ptr<LlamaAttention> self_attn;
  std::shared_ptr<GatedMLP> mlp;  // SiLU
};

using LlamaBody = DecoderBody<LlamaDecoderLayer, RMSNorm>;

class LlamaForCausalLM : public DecoderModel {
 public:
  explicit LlamaForCausalLM(const ModelConfig& config);
  at::Tensor forward_hidden(const at::Tensor& input_ids, const ForwardOptions& options) override;

  std::shared_ptr<LlamaBody> model;
};

}  // namespace retort
