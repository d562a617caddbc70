// The Llama-family decoder: LlamaForCausalLM (Llama 2, 3, 3.1/3.2 rope), MistralForCausalLM
// and Qwen2ForCausalLM (q/k/v biases). RMSNorm, RoPE, grouped-query attention through
// at::scaled_dot_product_attention, SwiGLU MLP, optional tied embeddings.
// Reference: transformers models/llama/modeling_llama.py (and mistral, qwen2).
#pragma once

#include <torch/nn/modules/container/modulelist.h>

#include "models/causal_lm.h"
#include "models/linear.h"

namespace retort {

class RMSNorm : public torch::nn::Module {
 public:
  RMSNorm(int64_t size, double eps);
  at::Tensor forward(const at::Tensor& x) const;  // [..., H]
  at::Tensor weight;

 private:
  double eps_;
};

// inv_freq [hd/2] float32 for the config's rope type, computed exactly as transformers does.
at::Tensor rope_inverse_frequencies(const ModelConfig& config);

class LlamaAttention : public torch::nn::Module {
 public:
  explicit LlamaAttention(const ModelConfig& config);
  // x [B, T, H], cos and signed sin [B, 1, T, hd] (see apply_rope) -> [B, T, H]
  at::Tensor forward(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin,
                     const std::optional<at::Tensor>& mask, bool causal, KVCache* cache, int64_t layer);

  std::shared_ptr<Projection> q_proj, k_proj, v_proj, o_proj;

 private:
  int64_t heads_, kv_heads_, head_dim_;
};

class LlamaMLP : public torch::nn::Module {
 public:
  explicit LlamaMLP(const ModelConfig& config);
  at::Tensor forward(const at::Tensor& x);  // down(silu(gate(x)) * up(x))
  std::shared_ptr<Projection> gate_proj, up_proj, down_proj;
};

class LlamaDecoderLayer : public torch::nn::Module {
 public:
  explicit LlamaDecoderLayer(const ModelConfig& config);
  at::Tensor forward(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin,
                     const std::optional<at::Tensor>& mask, bool causal, KVCache* cache, int64_t layer);

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

class LlamaForCausalLM : public CausalLM {
 public:
  explicit LlamaForCausalLM(const ModelConfig& config);

  const ModelConfig& config() const override { return config_; }
  at::Tensor forward_hidden(const at::Tensor& input_ids, const ForwardOptions& options) override;
  at::Tensor logits(const at::Tensor& hidden) override;
  at::Tensor output_weight() const override;
  KVCache make_cache(int64_t batch, int64_t capacity) const override;
  std::string gguf_tensor_name(const std::string& hf_name) const override;
  std::optional<int64_t> gguf_permuted_heads(const std::string& hf_name) const override;
  std::string gguf_architecture() const override;

  std::shared_ptr<LlamaBody> model;
  std::shared_ptr<Projection> lm_head;  // null when tied

 private:
  ModelConfig config_;
  at::Tensor inv_freq_;  // [hd/2] float32; not a buffer, so model->to(dtype) leaves it float32
  at::Tensor checkpoint_anchor_;  // see CheckpointedLayer
};

}  // namespace retort
