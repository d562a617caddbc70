// The Llama-family decoder: LlamaForCausalLM (Llama 2, 3, 3.1/3.2 rope), MistralForCausalLM,
// Qwen2ForCausalLM (q/k/v biases) and Qwen3ForCausalLM (per-head q/k RMSNorm). RMSNorm, RoPE,
// grouped-query attention through at::scaled_dot_product_attention, SwiGLU MLP, optional tied
// embeddings. Reference: transformers models/llama/modeling_llama.py (and mistral, qwen2, qwen3).
#pragma once

#include <torch/nn/modules/container/modulelist.h>

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

class LlamaMLP : public torch::nn::Module {
 public:
  explicit LlamaMLP(const ModelConfig& config);
  at::Tensor forward(const at::Tensor& x);  // down(silu(gate(x)) * up(x))
  std::shared_ptr<Projection> gate_proj, up_proj, down_proj;
};

class LlamaDecoderLayer : public DecoderLayer {
 public:
  explicit LlamaDecoderLayer(const ModelConfig& config);
  at::Tensor forward(const at::Tensor& x, const LayerInputs& in, KVCache* cache, int64_t layer) override;

  std::shared_ptr<RMSNorm> input_layernorm, post_attention_layernorm;
  std::shared_ptr<LlamaAttention> self_attn;
  std::shared_ptr<LlamaMLP> mlp;
};

class LlamaBody : public torch::nn::Module {  // HF "model."
 public:
  explicit LlamaBody(const ModelConfig& config);
  at::Tensor embed_tokens_weight;  // registered as embed_tokens.weight
  torch::nn::ModuleList layers;
  std::shared_ptr<RMSNorm> norm;
  std::vector<std::shared_ptr<LlamaDecoderLayer>> layer_list;
};

class LlamaForCausalLM : public DecoderModel {
 public:
  explicit LlamaForCausalLM(const ModelConfig& config);

  at::Tensor forward_hidden(const at::Tensor& input_ids, const ForwardOptions& options) override;
  at::Tensor logits(const at::Tensor& hidden) override;
  const Projection& output_head() const override { return lm_head ? *lm_head : *tied_head_; }
  KVCache make_cache(int64_t batch, int64_t capacity) const override;

  std::shared_ptr<LlamaBody> model;
  std::shared_ptr<Projection> lm_head;  // null when tied

 private:
  std::shared_ptr<Projection> tied_head_;  // over embed_tokens.weight when tied (not registered)
};

}  // namespace retort
