// Gemma 3 text decoder; mirrors transformers' modeling_gemma3.py operation by operation so
// float32 logits match to rounding.
#include "models/gemma3.h"

#include <ATen/ATen.h>

#include <cmath>

namespace retort {

Gemma3RMSNorm::Gemma3RMSNorm(int64_t size, double eps) : eps_(eps) {
  weight = register_parameter("weight", at::zeros({size}));
}

at::Tensor Gemma3RMSNorm::forward(const at::Tensor& x) const {
  // Unlike Llama's, the product with the weight happens in float32 before the cast back.
  const at::Tensor h = x.to(at::kFloat);
  const at::Tensor normed = h * at::rsqrt(h.pow(2).mean(-1, /*keepdim=*/true) + eps_);
  return (normed * (1.0 + weight.to(at::kFloat))).to(x.scalar_type());
}

Gemma3Attention::Gemma3Attention(const ModelConfig& config)
    : heads_(config.num_attention_heads),
      kv_heads_(config.num_key_value_heads),
      head_dim_(config.head_dim),
      scale_(1.0 / std::sqrt(config.query_pre_attn_scalar.value_or(static_cast<double>(config.head_dim)))) {
  const int64_t hidden = config.hidden_size;
  const bool bias = config.attention_bias;
  q_proj = register_module("q_proj", std::make_shared<Projection>(hidden, heads_ * head_dim_, bias));
  k_proj = register_module("k_proj", std::make_shared<Projection>(hidden, kv_heads_ * head_dim_, bias));
  v_proj = register_module("v_proj", std::make_shared<Projection>(hidden, kv_heads_ * head_dim_, bias));
  o_proj = register_module("o_proj", std::make_shared<Projection>(heads_ * head_dim_, hidden, config.o_proj_bias));
  q_norm = register_module("q_norm", std::make_shared<Gemma3RMSNorm>(head_dim_, config.rms_norm_eps));
  k_norm = register_module("k_norm", std::make_shared<Gemma3RMSNorm>(head_dim_, config.rms_norm_eps));
}

at::Tensor Gemma3Attention::forward(const at::Tensor& x, const LayerInputs& in, KVCache* cache, int64_t layer) {
  const int64_t batch = x.size(0), steps = x.size(1);
  at::Tensor q = q_norm->forward(q_proj->forward(x).view({batch, steps, heads_, head_dim_})).transpose(1, 2);
  at::Tensor k = k_norm->forward(k_proj->forward(x).view({batch, steps, kv_heads_, head_dim_})).transpose(1, 2);
  at::Tensor v = v_proj->forward(x).view({batch, steps, kv_heads_, head_dim_}).transpose(1, 2);
  return o_proj->forward(rotate_and_attend(q, k, v, in, cache, layer, scale_));
}

Gemma3DecoderLayer::Gemma3DecoderLayer(const ModelConfig& config) {
  self_attn = register_module("self_attn", std::make_shared<Gemma3Attention>(config));
  mlp = register_module("mlp", std::make_shared<GatedMLP>(config, MlpActivation::kGeluTanh));
  const auto norm = [&](const char* name) {
    return register_module(name, std::make_shared<Gemma3RMSNorm>(config.hidden_size, config.rms_norm_eps));
  };
  input_layernorm = norm("input_layernorm");
  post_attention_layernorm = norm("post_attention_layernorm");
  pre_feedforward_layernorm = norm("pre_feedforward_layernorm");
  post_feedforward_layernorm = norm("post_feedforward_layernorm");
}

at::Tensor Gemma3DecoderLayer::forward(const at::Tensor& x, const LayerInputs& in, KVCache* cache, int64_t layer) {
  const at::Tensor h =
      x + post_attention_layernorm->forward(self_attn->forward(input_layernorm->forward(x), in, cache, layer));
  return h + post_feedforward_layernorm->forward(mlp->forward(pre_feedforward_layernorm->forward(h)));
}

Gemma3ForCausalLM::Gemma3ForCausalLM(const ModelConfig& config) : DecoderModel(config) {
  model = register_module("model", std::make_shared<Gemma3Body>(config));
  adopt_body(*model);
}

at::Tensor Gemma3ForCausalLM::forward_hidden(const at::Tensor& input_ids, const ForwardOptions& options) {
  const at::Tensor& embedding = model->embed_tokens_weight;
  // sqrt(hidden) as a float32 scalar cast to the weight's dtype, as Gemma3TextScaledWordEmbedding does.
  const double scale = static_cast<double>(static_cast<float>(std::sqrt(static_cast<double>(config_.hidden_size))));
  const at::Tensor h = run_layers(input_ids, options, [&](const at::Tensor& ids) {
    return at::embedding(embedding, ids) * at::scalar_tensor(scale, embedding.options()).to(embedding.scalar_type());
  });
  return model->norm->forward(h);
}

}  // namespace retort
