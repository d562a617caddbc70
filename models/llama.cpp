// Llama-family decoder; mirrors transformers' modeling_llama.py operation by operation so
// float32 logits match to rounding.
#include "models/llama.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/custom_function.h>

#include <cmath>

#include "io/error.h"
#include "models/gemm.h"

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
  q = apply_rope(q, in.cos, in.sin);
  k = apply_rope(k, in.cos, in.sin);
  if (cache != nullptr) {
    const int64_t past = cache->length;
    cache->keys[layer].narrow(2, past, steps).copy_(k);
    cache->values[layer].narrow(2, past, steps).copy_(v);
    k = cache->keys[layer].narrow(2, 0, past + steps);
    v = cache->values[layer].narrow(2, 0, past + steps);
  }
  const double scale = 1.0 / std::sqrt(static_cast<double>(head_dim_));
  const at::Tensor out = at::scaled_dot_product_attention(q, k, v, in.mask, 0.0, in.causal, scale,
                                                          /*enable_gqa=*/heads_ != kv_heads_);
  return o_proj->forward(out.transpose(1, 2).reshape({batch, steps, heads_ * head_dim_}));
}

LlamaMLP::LlamaMLP(const ModelConfig& config) {
  const int64_t hidden = config.hidden_size, inner = config.intermediate_size;
  gate_proj = register_module("gate_proj", std::make_shared<Projection>(hidden, inner, config.mlp_bias));
  up_proj = register_module("up_proj", std::make_shared<Projection>(hidden, inner, config.mlp_bias));
  down_proj = register_module("down_proj", std::make_shared<Projection>(inner, hidden, config.mlp_bias));
}

at::Tensor LlamaMLP::forward(const at::Tensor& x) {
  return down_proj->forward(at::silu(gate_proj->forward(x)) * up_proj->forward(x));
}

LlamaDecoderLayer::LlamaDecoderLayer(const ModelConfig& config) {
  self_attn = register_module("self_attn", std::make_shared<LlamaAttention>(config));
  mlp = register_module("mlp", std::make_shared<LlamaMLP>(config));
  input_layernorm = register_module("input_layernorm", std::make_shared<RMSNorm>(config.hidden_size, config.rms_norm_eps));
  post_attention_layernorm =
      register_module("post_attention_layernorm", std::make_shared<RMSNorm>(config.hidden_size, config.rms_norm_eps));
}

at::Tensor LlamaDecoderLayer::forward(const at::Tensor& x, const LayerInputs& in, KVCache* cache, int64_t layer) {
  at::Tensor h = x + self_attn->forward(input_layernorm->forward(x), in, cache, layer);
  return h + mlp->forward(post_attention_layernorm->forward(h));
}

LlamaBody::LlamaBody(const ModelConfig& config) {
  auto embed = register_module("embed_tokens", std::make_shared<torch::nn::Module>("Embedding"));
  embed_tokens_weight = embed->register_parameter("weight", at::empty({config.vocab_size, config.hidden_size}));
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < config.num_hidden_layers; ++i) {
    layer_list.push_back(std::make_shared<LlamaDecoderLayer>(config));
    layers->push_back(layer_list.back());
  }
  norm = register_module("norm", std::make_shared<RMSNorm>(config.hidden_size, config.rms_norm_eps));
}

LlamaForCausalLM::LlamaForCausalLM(const ModelConfig& config) : DecoderModel(config) {
  model = register_module("model", std::make_shared<LlamaBody>(config));
  for (const auto& layer : model->layer_list) add_decoder_layer(layer.get());
  if (!config.tie_word_embeddings) {
    lm_head = register_module("lm_head", std::make_shared<Projection>(config.hidden_size, config.vocab_size, false));
  } else {
    tied_head_ = Projection::over(dense_storage(model->embed_tokens_weight), config.hidden_size, config.vocab_size);
  }
}

at::Tensor LlamaForCausalLM::forward_hidden(const at::Tensor& input_ids, const ForwardOptions& options) {
  const at::Tensor& embedding = model->embed_tokens_weight;
  const at::Tensor h = run_layers(input_ids, options, embedding.device(),
                                  [&](const at::Tensor& ids) { return at::embedding(embedding, ids); });
  return model->norm->forward(h);
}

at::Tensor LlamaForCausalLM::logits(const at::Tensor& hidden) {
  // A tied head lives with the embedding, on the first device of a model spread over several.
  return lm_head ? lm_head->forward(hidden) : tied_head_->forward(hidden.to(model->embed_tokens_weight.device()));
}

KVCache LlamaForCausalLM::make_cache(int64_t batch, int64_t capacity) const {
  return make_kv_cache(config_, batch, capacity, model->embed_tokens_weight.options().requires_grad(false));
}

}  // namespace retort
