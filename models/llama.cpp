// Llama-family decoder; mirrors transformers' modeling_llama.py operation by operation so
// float32 logits match to rounding.
#include "models/llama.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/custom_function.h>

#include <cmath>
#include <regex>

#include "io/error.h"
#include "models/gemm.h"
#include "models/registry.h"

namespace retort {

RMSNorm::RMSNorm(int64_t size, double eps) : eps_(eps) {
  weight = register_parameter("weight", at::ones({size}));
}

at::Tensor RMSNorm::forward(const at::Tensor& x) const {
  // In float32 whatever the model dtype, then back (as HF's LlamaRMSNorm).
  const at::Tensor h = x.to(at::kFloat);
  const at::Tensor variance = h.pow(2).mean(-1, /*keepdim=*/true);
  return weight * (h * at::rsqrt(variance + eps_)).to(x.scalar_type());
}

at::Tensor rope_inverse_frequencies(const ModelConfig& config) {
  const RopeConfig& rope = config.rope;
  const int64_t dim = config.head_dim;
  // Same ATen ops in the same order as modeling_rope_utils.py, for bit-identical values.
  at::Tensor inv_freq = at::pow(c10::Scalar(rope.theta), at::arange(0, dim, 2, at::kLong).to(at::kFloat) / dim)
                            .reciprocal();
  if (!rope.frequency_divisors.empty()) {
    return inv_freq / at::tensor(rope.frequency_divisors, at::kFloat);  // as llama.cpp: theta / factor
  }
  if (rope.type == "linear") return inv_freq / rope.factor;
  if (rope.type != "llama3") return inv_freq;
  const double low_freq_wavelen = static_cast<double>(rope.original_max_position_embeddings) / rope.low_freq_factor;
  const double high_freq_wavelen = static_cast<double>(rope.original_max_position_embeddings) / rope.high_freq_factor;
  const at::Tensor wavelen = inv_freq.reciprocal() * (2 * M_PI);
  at::Tensor inv_freq_llama = at::where(wavelen > low_freq_wavelen, inv_freq / rope.factor, inv_freq);
  const at::Tensor smooth_factor =
      (wavelen.reciprocal() * rope.original_max_position_embeddings - rope.low_freq_factor) /
      (rope.high_freq_factor - rope.low_freq_factor);
  const at::Tensor smoothed =
      (1 - smooth_factor) * inv_freq_llama / rope.factor + smooth_factor * inv_freq_llama;
  const at::Tensor is_medium = (wavelen < high_freq_wavelen).logical_not() & (wavelen > low_freq_wavelen).logical_not();
  return at::where(is_medium, smoothed, inv_freq_llama);
}

namespace {

// HF's rotate_half(x) * sin = cat(-x2, x1) * cat(s1, s2) = swap_halves(x) * cat(-s1, s2): the sign
// lives in `signed_sin` (made once per forward), and the swap is a flip whose backward is a flip,
// not the zero-filled slice gradients of x[..., :half] (4 per layer, 3% of a full step on CPU).
at::Tensor swap_halves(const at::Tensor& x) {
  return x.unflatten(-1, {2, x.size(-1) / 2}).flip({-2}).flatten(-2);
}

at::Tensor apply_rope(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& signed_sin) {
  return x * cos + swap_halves(x) * signed_sin;  // x [B, h, T, hd], cos/sin [B, 1, T, hd]
}

}  // namespace

LlamaAttention::LlamaAttention(const ModelConfig& config)
    : heads_(config.num_attention_heads), kv_heads_(config.num_key_value_heads), head_dim_(config.head_dim) {
  const int64_t hidden = config.hidden_size;
  q_proj = register_module("q_proj", std::make_shared<Projection>(hidden, heads_ * head_dim_, config.attention_bias));
  k_proj = register_module("k_proj", std::make_shared<Projection>(hidden, kv_heads_ * head_dim_, config.attention_bias));
  v_proj = register_module("v_proj", std::make_shared<Projection>(hidden, kv_heads_ * head_dim_, config.attention_bias));
  o_proj = register_module("o_proj", std::make_shared<Projection>(heads_ * head_dim_, hidden, config.o_proj_bias));
}

at::Tensor LlamaAttention::forward(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin,
                                   const std::optional<at::Tensor>& mask, bool causal, KVCache* cache,
                                   int64_t layer) {
  const int64_t batch = x.size(0), steps = x.size(1);
  at::Tensor q = q_proj->forward(x).view({batch, steps, heads_, head_dim_}).transpose(1, 2);
  at::Tensor k = k_proj->forward(x).view({batch, steps, kv_heads_, head_dim_}).transpose(1, 2);
  at::Tensor v = v_proj->forward(x).view({batch, steps, kv_heads_, head_dim_}).transpose(1, 2);
  q = apply_rope(q, cos, sin);
  k = apply_rope(k, cos, sin);
  if (cache != nullptr) {
    const int64_t past = cache->length;
    cache->keys[layer].narrow(2, past, steps).copy_(k);
    cache->values[layer].narrow(2, past, steps).copy_(v);
    k = cache->keys[layer].narrow(2, 0, past + steps);
    v = cache->values[layer].narrow(2, 0, past + steps);
  }
  const double scale = 1.0 / std::sqrt(static_cast<double>(head_dim_));
  const at::Tensor out = at::scaled_dot_product_attention(q, k, v, mask, 0.0, causal, scale,
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

at::Tensor LlamaDecoderLayer::forward(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin,
                                      const std::optional<at::Tensor>& mask, bool causal, KVCache* cache,
                                      int64_t layer) {
  at::Tensor h = x + self_attn->forward(input_layernorm->forward(x), cos, sin, mask, causal, cache, layer);
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

LlamaForCausalLM::LlamaForCausalLM(const ModelConfig& config) : config_(config) {
  model = register_module("model", std::make_shared<LlamaBody>(config));
  if (!config.tie_word_embeddings) {
    lm_head = register_module("lm_head", std::make_shared<Projection>(config.hidden_size, config.vocab_size, false));
  }
  inv_freq_ = rope_inverse_frequencies(config);  // kept float32 whatever the model dtype
}

namespace {

// The boolean attention mask [B, 1, T, S] (true = attend), or nullopt when SDPA's own
// causal flag is exact (no padding, no window, no segments, no cached prefix).
std::optional<at::Tensor> build_mask(const ModelConfig& config, int64_t batch, int64_t steps, int64_t past,
                                     const ForwardOptions& options, at::Device device, bool& causal) {
  const at::Tensor& attention_mask = options.attention_mask;
  const int64_t total = past + steps;
  const bool padded = attention_mask.defined() && !attention_mask.all().item<bool>();
  const bool windowed = config.sliding_window && total > *config.sliding_window;
  // Rows that each hold one segment need no segment mask (the causal flag is exact).
  const bool segmented = options.segment_ids.defined() &&
                         (options.segment_ids.amax(1) != options.segment_ids.amin(1)).any().item<bool>();
  causal = false;
  if (!padded && !windowed && !segmented) {
    if (past == 0) {
      causal = steps > 1;
      return std::nullopt;
    }
    if (steps == 1) return std::nullopt;
  }
  const auto long_options = at::TensorOptions().dtype(at::kLong).device(device);
  const at::Tensor query_pos = at::arange(past, total, long_options).view({steps, 1});
  const at::Tensor key_pos = at::arange(0, total, long_options).view({1, total});
  at::Tensor allowed = key_pos <= query_pos;  // [T, S]
  if (windowed) allowed = allowed & ((query_pos - key_pos) < *config.sliding_window);
  allowed = allowed.unsqueeze(0).expand({batch, steps, total});
  if (padded) allowed = allowed & attention_mask.to(device).to(at::kBool).view({batch, 1, total});
  if (segmented) {
    const at::Tensor segments = options.segment_ids.to(device);  // [B, T]
    allowed = allowed & (segments.unsqueeze(2) == segments.unsqueeze(1));
  }
  // A query with nothing to attend to (a left-pad position) attends to itself, avoiding NaN.
  const at::Tensor self = (key_pos == query_pos).unsqueeze(0).expand({batch, steps, total});
  const at::Tensor empty_row = allowed.any(-1, /*keepdim=*/true).logical_not();
  allowed = allowed | (self & empty_row);
  return allowed.unsqueeze(1);
}

// One decoder layer as a checkpoint (torch.utils.checkpoint's reentrant form): the forward runs
// without autograd and keeps the layer's input; the backward restores the random-generator state
// of the forward (so LoRA dropout draws the same masks), recomputes the layer with autograd and
// backpropagates through it, which accumulates the layer's parameter gradients directly.
struct CheckpointedLayer : public torch::autograd::Function<CheckpointedLayer> {
  // `anchor`: a tensor that requires grad, so the output does even when `x` does not (the first
  // layer's input) and the layer's own trainable parameters still get their gradients.
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, const at::Tensor& anchor,
                            const at::Tensor& cos, const at::Tensor& sin, const std::optional<at::Tensor>* mask_ptr,
                            LlamaDecoderLayer* layer, bool causal, int64_t index) {
    // The mask goes by pointer: autograd would take an optional tensor argument for an input.
    const std::optional<at::Tensor>& mask = *mask_ptr;
    (void)anchor;
    ctx->saved_data["x_requires_grad"] = x.requires_grad();
    ctx->saved_data["layer"] = reinterpret_cast<int64_t>(layer);  // the model outlives its graph
    ctx->saved_data["causal"] = causal;
    ctx->saved_data["index"] = index;
    ctx->saved_data["x"] = x;
    ctx->saved_data["cos"] = cos;
    ctx->saved_data["sin"] = sin;
    ctx->saved_data["mask"] = mask ? c10::IValue(*mask) : c10::IValue();
    ctx->saved_data["rng"] = generator_for(x.device()).get_state();
    c10::NoGradGuard no_grad;
    return layer->forward(x, cos, sin, mask, causal, nullptr, index);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    auto* layer = reinterpret_cast<LlamaDecoderLayer*>(ctx->saved_data["layer"].toInt());
    const bool want_x = ctx->saved_data["x_requires_grad"].toBool();
    const at::Tensor x = ctx->saved_data["x"].toTensor().detach().requires_grad_(want_x);
    at::Generator generator = generator_for(x.device());
    const at::Tensor now = generator.get_state();
    generator.set_state(ctx->saved_data["rng"].toTensor());
    at::Tensor out;
    {
      c10::AutoGradMode grad(true);
      out = layer->forward(x, ctx->saved_data["cos"].toTensor(), ctx->saved_data["sin"].toTensor(),
                           optional_mask(ctx->saved_data["mask"]), ctx->saved_data["causal"].toBool(),
                           nullptr, ctx->saved_data["index"].toInt());
    }
    generator.set_state(now);
    torch::autograd::backward({out}, {grad_outputs[0]});
    return {want_x ? x.grad() : at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(),
            at::Tensor(),  at::Tensor(),                 at::Tensor(), at::Tensor()};
  }

  static at::Generator generator_for(const at::Device& device) {
    return at::globalContext().defaultGenerator(device.is_cpu() ? at::Device(at::kCPU) : device);
  }
  static std::optional<at::Tensor> optional_mask(const c10::IValue& mask) {
    return mask.isTensor() ? std::optional<at::Tensor>(mask.toTensor()) : std::nullopt;
  }
};

}  // namespace

at::Tensor LlamaForCausalLM::forward_hidden(const at::Tensor& input_ids, const ForwardOptions& options) {
  TORCH_CHECK(input_ids.dim() == 2, "input_ids must be [B, T]");
  const int64_t batch = input_ids.size(0), steps = input_ids.size(1);
  const int64_t past = options.cache ? options.cache->length : 0;
  if (options.cache && past + steps > options.cache->capacity) {
    throw bad_input("sequence of " + std::to_string(past + steps) + " tokens exceeds the KV cache capacity " +
                    std::to_string(options.cache->capacity));
  }
  if (options.segment_ids.defined() && (past > 0 || options.segment_ids.sizes() != input_ids.sizes())) {
    throw internal_error("segment_ids must be [B, T] like input_ids and cannot be used with a KV cache");
  }
  if (!layer_devices_.empty() && (options.cache || layer_devices_.size() != model->layer_list.size())) {
    throw internal_error("layer devices need one device per layer and no KV cache");
  }
  const at::Device device = model->embed_tokens_weight.device();
  at::Tensor positions = options.position_ids.defined() ? options.position_ids.to(device) : at::Tensor();
  if (!positions.defined()) {
    positions = at::arange(past, past + steps, at::TensorOptions().dtype(at::kLong).device(device))
                    .unsqueeze(0)
                    .expand({batch, steps});
  }
  at::Tensor h = at::embedding(model->embed_tokens_weight, input_ids.to(device));  // [B, T, H]
  // cos/sin [B, 1, T, hd] in float32, then in the activation dtype (as HF).
  const at::Tensor freqs = positions.to(at::kFloat).unsqueeze(-1) * inv_freq_.to(device).view({1, 1, -1});
  const at::Tensor angles = at::cat({freqs, freqs}, -1);
  at::Tensor cos = angles.cos().to(h.scalar_type()).unsqueeze(1);
  const at::Tensor plain_sin = angles.sin().to(h.scalar_type()).unsqueeze(1);
  const int64_t half = plain_sin.size(-1) / 2;
  at::Tensor sin = at::cat({-plain_sin.narrow(-1, 0, half), plain_sin.narrow(-1, half, half)}, -1);
  bool causal = false;
  ForwardOptions local = options;
  if (local.attention_mask.defined()) local.attention_mask = local.attention_mask.to(device);
  if (local.segment_ids.defined()) local.segment_ids = local.segment_ids.to(device);
  std::optional<at::Tensor> mask = build_mask(config_, batch, steps, past, local, device, causal);
  const bool checkpoint = activation_checkpointing_ && at::GradMode::is_enabled() && !options.cache;
  if (checkpoint && !checkpoint_anchor_.defined()) checkpoint_anchor_ = at::zeros({1}).requires_grad_(true);
  if (options.layer_states) options.layer_states->push_back(h);
  for (size_t i = 0; i < model->layer_list.size(); ++i) {
    auto& layer = model->layer_list[i];
    if (!layer_devices_.empty() && layer_devices_[i] != h.device()) {  // a pipeline boundary
      const at::Device next = layer_devices_[i];
      h = h.to(next);
      cos = cos.to(next);
      sin = sin.to(next);
      if (mask) mask = mask->to(next);
    }
    h = checkpoint ? CheckpointedLayer::apply(h, checkpoint_anchor_, cos, sin, &mask, layer.get(),
                                              causal, static_cast<int64_t>(i))
                   : layer->forward(h, cos, sin, mask, causal, options.cache, static_cast<int64_t>(i));
    if (options.layer_states) options.layer_states->push_back(h);
  }
  if (options.cache) options.cache->length += steps;
  return model->norm->forward(h);
}

at::Tensor LlamaForCausalLM::output_weight() const {
  return lm_head ? lm_head->weight : model->embed_tokens_weight;
}

at::Tensor LlamaForCausalLM::logits(const at::Tensor& hidden) {
  // A tied head lives with the embedding, on the first device of a model spread over several.
  return lm_head ? lm_head->forward(hidden)
                 : gemm_linear(hidden.to(model->embed_tokens_weight.device()), model->embed_tokens_weight);
}

KVCache LlamaForCausalLM::make_cache(int64_t batch, int64_t capacity) const {
  KVCache cache;
  cache.capacity = capacity;
  const auto options = model->embed_tokens_weight.options().requires_grad(false);
  for (int64_t i = 0; i < config_.num_hidden_layers; ++i) {
    cache.keys.push_back(at::empty({batch, config_.num_key_value_heads, capacity, config_.head_dim}, options));
    cache.values.push_back(at::empty({batch, config_.num_key_value_heads, capacity, config_.head_dim}, options));
  }
  return cache;
}

std::string LlamaForCausalLM::gguf_architecture() const {
  return config_.architecture == "Qwen2ForCausalLM" ? "qwen2" : "llama";
}

std::string LlamaForCausalLM::gguf_tensor_name(const std::string& hf_name) const {
  static const std::vector<std::pair<std::string, std::string>> fixed = {
      {"model.embed_tokens.weight", "token_embd.weight"},
      {"model.norm.weight", "output_norm.weight"},
      {"lm_head.weight", "output.weight"},
  };
  for (const auto& [hf, gguf] : fixed) {
    if (hf_name == hf) return gguf;
  }
  static const std::vector<std::pair<std::string, std::string>> per_layer = {
      {"input_layernorm.weight", "attn_norm.weight"},
      {"self_attn.q_proj.", "attn_q."},
      {"self_attn.k_proj.", "attn_k."},
      {"self_attn.v_proj.", "attn_v."},
      {"self_attn.o_proj.", "attn_output."},
      {"post_attention_layernorm.weight", "ffn_norm.weight"},
      {"mlp.gate_proj.", "ffn_gate."},
      {"mlp.up_proj.", "ffn_up."},
      {"mlp.down_proj.", "ffn_down."},
  };
  static const std::regex layer_pattern(R"(model\.layers\.(\d+)\.(.+))");
  std::smatch match;
  if (std::regex_match(hf_name, match, layer_pattern)) {
    const std::string rest = match[2].str();
    for (const auto& [hf, gguf] : per_layer) {
      if (rest.rfind(hf, 0) == 0) return "blk." + match[1].str() + "." + gguf + rest.substr(hf.size());
    }
  }
  throw internal_error("no GGUF name for tensor").tensor(hf_name);
}

std::optional<int64_t> LlamaForCausalLM::gguf_permuted_heads(const std::string& hf_name) const {
  if (gguf_architecture() != "llama") return std::nullopt;  // qwen2 uses NEOX rope: no permutation
  if (hf_name.find(".self_attn.q_proj.") != std::string::npos) return config_.num_attention_heads;
  if (hf_name.find(".self_attn.k_proj.") != std::string::npos) return config_.num_key_value_heads;
  return std::nullopt;
}

void register_llama_family() {
  for (const char* name : {"LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM"}) {
    register_architecture(name, [](const ModelConfig& config) -> std::shared_ptr<CausalLM> {
      return std::make_shared<LlamaForCausalLM>(config);
    });
  }
}

}  // namespace retort
