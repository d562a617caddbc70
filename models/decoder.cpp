// The decoder pieces every family shares: RMSNorm, RoPE tables, the attention mask (padding,
// packed segments, a sliding window), per-layer attention inputs and activation checkpointing.
// They mirror transformers' modeling_llama.py operation by operation so float32 logits match to
// rounding.
#include "models/decoder.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <cmath>

#include "io/error.h"

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

at::Tensor rope_inverse_frequencies(const ModelConfig& config, std::optional<double> theta, bool scaled) {
  const RopeConfig& rope = config.rope;
  const int64_t dim = config.head_dim;
  // Same ATen ops in the same order as modeling_rope_utils.py, for bit-identical values.
  at::Tensor inv_freq = at::pow(c10::Scalar(theta.value_or(rope.theta)), at::arange(0, dim, 2, at::kLong).to(at::kFloat) / dim)
                            .reciprocal();
  if (!scaled) return inv_freq;
  if (!rope.frequency_divisors.empty()) {
    return inv_freq / at::tensor(rope.frequency_divisors, at::kFloat);  // as llama.cpp: theta / factor
  }
  if (rope.type == RopeScaling::kLinear) return inv_freq / rope.factor;
  if (rope.type != RopeScaling::kLlama3) return inv_freq;
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

}  // namespace

at::Tensor apply_rope(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& signed_sin) {
  return x * cos + swap_halves(x) * signed_sin;  // x [B, h, T, hd], cos/sin [B, 1, T, hd]
}

namespace {

// One decoder layer as a checkpoint (torch.utils.checkpoint's reentrant form): the forward runs
// without autograd and keeps the layer's input; the backward restores the random-generator state
// of the forward (so LoRA dropout draws the same masks), recomputes the layer with autograd and
// backpropagates through it, which accumulates the layer's parameter gradients directly.
struct CheckpointedLayer : public torch::autograd::Function<CheckpointedLayer> {
  // `anchor`: a tensor that requires grad, so the output does even when `x` does not (the first
  // layer's input) and the layer's own trainable parameters still get their gradients.
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, const at::Tensor& anchor,
                            const at::Tensor& cos, const at::Tensor& sin, const std::optional<at::Tensor>* mask_ptr,
                            DecoderLayer* layer, bool causal, int64_t index) {
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
    return layer->forward(x, LayerInputs{cos, sin, mask, causal}, nullptr, index);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    auto* layer = reinterpret_cast<DecoderLayer*>(ctx->saved_data["layer"].toInt());
    const bool want_x = ctx->saved_data["x_requires_grad"].toBool();
    const at::Tensor x = ctx->saved_data["x"].toTensor().detach().requires_grad_(want_x);
    at::Generator generator = generator_for(x.device());
    const at::Tensor now = generator.get_state();
    generator.set_state(ctx->saved_data["rng"].toTensor());
    at::Tensor out;
    {
      c10::AutoGradMode grad(true);
      const LayerInputs in{ctx->saved_data["cos"].toTensor(), ctx->saved_data["sin"].toTensor(),
                           optional_mask(ctx->saved_data["mask"]), ctx->saved_data["causal"].toBool()};
      out = layer->forward(x, in, nullptr, ctx->saved_data["index"].toInt());
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

// The boolean attention mask [B, 1, T, S] (true = attend), or nullopt when SDPA's own
// causal flag is exact (no padding, no window, no segments, no cached prefix).
MaskFacts mask_facts(const ForwardOptions& options) {
  MaskFacts facts;
  facts.padded = options.attention_mask.defined() && !options.attention_mask.all().item<bool>();
  // Rows that each hold one segment need no segment mask (the causal flag is exact).
  facts.segmented = options.segment_ids.defined() &&
                    (options.segment_ids.amax(1) != options.segment_ids.amin(1)).any().item<bool>();
  return facts;
}

std::optional<at::Tensor> build_mask(std::optional<int64_t> window, const MaskFacts& facts, int64_t batch,
                                     int64_t steps, int64_t past, const ForwardOptions& options, at::Device device,
                                     bool& causal) {
  const at::Tensor& attention_mask = options.attention_mask;
  const int64_t total = past + steps;
  const bool padded = facts.padded, segmented = facts.segmented;
  const bool windowed = window && total > *window;
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
  if (windowed) allowed = allowed & ((query_pos - key_pos) < *window);
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

at::Tensor checkpointed_layer(DecoderLayer& layer, const at::Tensor& x, const at::Tensor& anchor, const LayerInputs& in,
                              int64_t index) {
  return CheckpointedLayer::apply(x, anchor, in.cos, in.sin, &in.mask, &layer, in.causal, index);
}

namespace {

// cos and signed sin [B, 1, T, hd] for one RoPE base: in float32, then in the activation dtype (as HF).
std::pair<at::Tensor, at::Tensor> rope_tables(const at::Tensor& inv_freq, const at::Tensor& positions,
                                              at::ScalarType dtype, at::Device device) {
  const at::Tensor freqs = positions.to(at::kFloat).unsqueeze(-1) * inv_freq.to(device).view({1, 1, -1});
  const at::Tensor angles = at::cat({freqs, freqs}, -1);
  const at::Tensor cos = angles.cos().to(dtype).unsqueeze(1);
  const at::Tensor plain_sin = angles.sin().to(dtype).unsqueeze(1);
  const int64_t half = plain_sin.size(-1) / 2;
  return {cos, at::cat({-plain_sin.narrow(-1, 0, half), plain_sin.narrow(-1, half, half)}, -1)};
}

}  // namespace

AttentionInputs::AttentionInputs(const ModelConfig& config, const std::vector<RopeFrequencies>& inv_freqs,
                                 const at::Tensor& positions, at::ScalarType dtype, int64_t batch, int64_t steps,
                                 int64_t past, const ForwardOptions& options, at::Device device) {
  const MaskFacts facts = mask_facts(options);
  // One cos/sin pair per RoPE (base and scaling), however many windows use it.
  std::vector<std::pair<at::Tensor, at::Tensor>> tables;
  for (const RopeFrequencies& rope : inv_freqs) tables.push_back(rope_tables(rope.inv_freq, positions, dtype, device));
  for (int64_t layer = 0; layer < config.num_hidden_layers; ++layer) {
    const LayerAttention spec = config.attention_of(layer);
    size_t index = 0;
    while (index < specs_.size() && !(specs_[index] == spec)) ++index;
    if (index == specs_.size()) {
      const auto rope = std::find_if(inv_freqs.begin(), inv_freqs.end(), [&](const auto& r) { return r.serves(spec); });
      if (rope == inv_freqs.end()) throw internal_error("no RoPE frequencies for base " + std::to_string(*spec.rope_theta));
      const auto& table = tables[static_cast<size_t>(rope - inv_freqs.begin())];
      LayerInputs in{table.first, table.second, std::nullopt, false};
      in.mask = build_mask(spec.sliding_window, facts, batch, steps, past, options, device, in.causal);
      specs_.push_back(spec);
      inputs_.push_back(std::move(in));
    }
    of_layer_.push_back(index);
  }
}

void AttentionInputs::move_to(at::Device device) {
  for (LayerInputs& in : inputs_) {
    in.cos = in.cos.to(device);
    in.sin = in.sin.to(device);
    if (in.mask) in.mask = in.mask->to(device);
  }
}

std::vector<RopeFrequencies> rope_frequency_tables(const ModelConfig& config) {
  std::vector<RopeFrequencies> tables;
  for (int64_t layer = 0; layer < config.num_hidden_layers; ++layer) {
    const LayerAttention spec = config.attention_of(layer);
    if (std::none_of(tables.begin(), tables.end(), [&](const RopeFrequencies& r) { return r.serves(spec); })) {
      tables.push_back({*spec.rope_theta, spec.scaled_rope,
                        rope_inverse_frequencies(config, *spec.rope_theta, spec.scaled_rope)});
    }
  }
  return tables;
}

KVCache make_kv_cache(const ModelConfig& config, int64_t batch, int64_t capacity, const at::TensorOptions& options) {
  KVCache cache;
  cache.capacity = capacity;
  for (int64_t i = 0; i < config.num_hidden_layers; ++i) {
    cache.keys.push_back(at::empty({batch, config.num_key_value_heads, capacity, config.head_dim}, options));
    cache.values.push_back(at::empty({batch, config.num_key_value_heads, capacity, config.head_dim}, options));
  }
  return cache;
}

at::Tensor rotate_and_attend(at::Tensor q, at::Tensor k, at::Tensor v, const LayerInputs& in, KVCache* cache,
                             int64_t layer, double scale) {
  const int64_t batch = q.size(0), heads = q.size(1), steps = q.size(2), head_dim = q.size(3);
  q = apply_rope(q, in.cos, in.sin);
  k = apply_rope(k, in.cos, in.sin);
  if (cache != nullptr) {
    const int64_t past = cache->length;
    cache->keys[layer].narrow(2, past, steps).copy_(k);
    cache->values[layer].narrow(2, past, steps).copy_(v);
    k = cache->keys[layer].narrow(2, 0, past + steps);
    v = cache->values[layer].narrow(2, 0, past + steps);
  }
  const at::Tensor out = at::scaled_dot_product_attention(q, k, v, in.mask, 0.0, in.causal, scale,
                                                          /*enable_gqa=*/heads != k.size(1));
  return out.transpose(1, 2).reshape({batch, steps, heads * head_dim});
}

GatedMLP::GatedMLP(const ModelConfig& config, MlpActivation activation) : activation_(activation) {
  const int64_t hidden = config.hidden_size, inner = config.intermediate_size;
  gate_proj = register_module("gate_proj", std::make_shared<Projection>(hidden, inner, config.mlp_bias));
  up_proj = register_module("up_proj", std::make_shared<Projection>(hidden, inner, config.mlp_bias));
  down_proj = register_module("down_proj", std::make_shared<Projection>(inner, hidden, config.mlp_bias));
}

at::Tensor GatedMLP::forward(const at::Tensor& x) {
  // up before gate: the order LoRA dropout draws its masks in (checkpoints resume on it).
  const at::Tensor up = up_proj->forward(x);
  const at::Tensor gate = gate_proj->forward(x);
  const at::Tensor activated = activation_ == MlpActivation::kSilu ? at::silu(gate) : at::gelu(gate, "tanh");
  return down_proj->forward(activated * up);
}

DecoderModel::DecoderModel(const ModelConfig& config) : config_(config) {
  inv_freqs_ = rope_frequency_tables(config);  // kept float32 whatever the model dtype
}

void DecoderModel::adopt_embedding(const at::Tensor& embedding) {
  embedding_ = embedding;
  if (!config_.tie_word_embeddings) {
    lm_head = register_module("lm_head", std::make_shared<Projection>(config_.hidden_size, config_.vocab_size, false));
  } else {
    tied_head_ = Projection::over(dense_storage(embedding_), config_.hidden_size, config_.vocab_size);
  }
}

at::Tensor DecoderModel::logits(const at::Tensor& hidden) {
  // A tied head lives with the embedding, on the first device of a model spread over several.
  return lm_head ? lm_head->forward(hidden) : tied_head_->forward(hidden.to(embedding_.device()));
}

KVCache DecoderModel::make_cache(int64_t batch, int64_t capacity) const {
  return make_kv_cache(config_, batch, capacity, embedding_.options().requires_grad(false));
}

at::Tensor DecoderModel::run_layers(const at::Tensor& input_ids, const ForwardOptions& options,
                                    const std::function<at::Tensor(const at::Tensor&)>& embed) {
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
  if (!layer_devices_.empty() && (options.cache || layer_devices_.size() != stack_.size())) {
    throw internal_error("layer devices need one device per layer and no KV cache");
  }
  const at::Device device = embedding_.device();
  at::Tensor positions = options.position_ids.defined() ? options.position_ids.to(device) : at::Tensor();
  if (!positions.defined()) {
    positions = at::arange(past, past + steps, at::TensorOptions().dtype(at::kLong).device(device))
                    .unsqueeze(0)
                    .expand({batch, steps});
  }
  at::Tensor h = embed(input_ids.to(device));  // [B, T, H]
  ForwardOptions local = options;
  if (local.attention_mask.defined()) local.attention_mask = local.attention_mask.to(device);
  if (local.segment_ids.defined()) local.segment_ids = local.segment_ids.to(device);
  AttentionInputs inputs(config_, inv_freqs_, positions, h.scalar_type(), batch, steps, past, local, device);
  const bool checkpoint = activation_checkpointing_ && at::GradMode::is_enabled() && !options.cache;
  if (checkpoint && !checkpoint_anchor_.defined()) checkpoint_anchor_ = at::zeros({1}).requires_grad_(true);
  if (options.layer_states) options.layer_states->push_back(h);
  for (size_t i = 0; i < stack_.size(); ++i) {
    if (!layer_devices_.empty() && layer_devices_[i] != h.device()) {  // a pipeline boundary
      h = h.to(layer_devices_[i]);
      inputs.move_to(layer_devices_[i]);
    }
    const LayerInputs& in = inputs.of_layer(i);
    const auto index = static_cast<int64_t>(i);
    h = checkpoint ? checkpointed_layer(*stack_[i], h, checkpoint_anchor_, in, index)
                   : stack_[i]->forward(h, in, options.cache, index);
    if (options.layer_states) options.layer_states->push_back(h);
  }
  if (options.cache) options.cache->length += steps;
  return h;
}

}  // namespace retort
