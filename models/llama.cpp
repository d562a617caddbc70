// Llama-family decoder; mirrors transformers' modeling_llama.py operation by operation so
// float32 logits match to rounding.
#include "models/llama.h"

#include <ATen/ATen.h>

#include <cmath>

namespace retort {

LlamaAttention::LlamaAttention(const ModelConfig& config)
    : heads_(config.num_attention_heads), kv_heads_(config.num_key_value_heads), head_dim_(config.head_dim) {
  const int64_t hidden = config.hidden_size;
  q_proj = register_module("q_proj", std::make_shared<Projection>(hidden, heads_ * head_dim_, config.attention_bias));
  k_proj = register_module("k_proj", std::make_shared<Projection>(hidden, kv_heads_ * head_dim_, config.attention_bias));
  v_proj = register_module("v_proj", std::make_shared<Projection>(hidden, kv_heads_ * head_dim_, config.attention_bias));
  o_proj = register_module("o_proj", std::make_shared<Projection>(heads_ * head_dim_, hidden, config.o_proj_bias));
  if (config.qk_norm) {
    q_norm = register_module("q_norm", std::make_shared<RMSNorm>(head_dim_, config.rms_norm_eps));
    k_norm = register_module("k_norm", std::make_shared<RMSNorm>(head_dim_, config.rms_norm_eps));
  }
}

at::Tensor LlamaAttention::forward(const at::Tensor& x, const LayerInputs& in, KVCache* cache, int64_t layer) {
  const int64_t batch = x.size(0), steps = x.size(1);
  at::Tensor q = q_proj->forward(x).view({batch, steps, heads_, head_dim_});
  at::Tensor k = k_proj->forward(x).view({batch, steps, kv_heads_, head_dim_});
  if (q_norm) {
    q = q_norm->forward(q);
    k = k_norm->forward(k);
  }
  q = q.transpose(1, 2);
  k = k.transpose(1, 2);
  at::Tensor v = v_proj->forward(x).view({batch, steps, kv_heads_, head_dim_}).transpose(1, 2);
  const double scale = 1.0 / std::sqrt(static_cast<double>(head_dim_));
  return o_proj->forward(rotate_and_attend(q, k, v, in, cache, layer, scale));
}

LlamaDecoderLayer::LlamaDecoderLayer(const ModelConfig& config) {
  self_attn = register_module("self_attn", std::make_shared<LlamaAttention>(config));
  mlp = register_module("mlp", std::make_shared<GatedMLP>(config, MlpActivation::kSilu));
  input_layernorm = register_module("input_layernorm", std::make_shared<RMSNorm>(config.hidden_size, config.rms_norm_eps));
  post_attention_layernorm =
      register_module("post_attention_layernorm", std::make_shared<RMSNorm>(config.hidden_size, config.rms_norm_eps));
}

at::Tensor LlamaDecoderLayer::forward(const at::Tensor& x, const LayerInputs& in, KVCache* cache, int64_t layer) {
  at::Tensor h = x + self_attn->forward(input_layernorm->forward(x), in, cache, layer);
  return h + mlp->forward(post_attention_layernorm->forward(h));
}

LlamaForCausalLM::LlamaForCausalLM(const ModelConfig& config) : DecoderModel(config) {
  model = register_module("model", std::make_shared<LlamaBody>(config));
  adopt_body(*model);
}

at::Tensor LlamaForCausalLM::forward_hidden(const at::Tensor& input_ids, const ForwardOptions& options) {
  const at::Tensor& embedding = model->embed_tokens_weight;
  const at::Tensor h = run_layers(input_ids, options, [&](const at::Tensor& ids) { return at::embedding(embedding, ids); });
  return model->norm->forward(h);
}

}  // namespace retort
