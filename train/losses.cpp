// Next-token cross-entropy over the output projection, chunked over tokens. With autograd the
// gradients are computed chunk by chunk inside the forward pass (a custom autograd function), so
// neither the forward nor the backward ever holds the float32 [tokens x vocab] logits at once;
// backward only scales the stored gradients. Reference: ForCausalLMLoss in transformers
// loss_utils.py (same shift, ignore index and sum); the "fused linear cross-entropy" idea.
#include "train/losses.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/custom_function.h>

#include "models/gemm.h"

namespace retort {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Summed CE of a chunk whose targets are all counted (causal_lm_loss drops ignored positions
// first): returns the loss and, when asked, d(loss)/d(logits) = softmax - one_hot.
at::Tensor chunk_loss(const at::Tensor& logits, const at::Tensor& targets, at::Tensor* grad_logits) {
  const at::Tensor log_probs = at::log_softmax(logits, -1);
  const at::Tensor loss = -log_probs.gather(1, targets.unsqueeze(1)).sum();
  if (grad_logits != nullptr) {
    at::Tensor grad = log_probs.exp_();  // softmax, reusing the buffer
    grad.scatter_add_(1, targets.unsqueeze(1), at::full({grad.size(0), 1}, -1.0, grad.options()));
    *grad_logits = grad;
  }
  return loss;
}

// A chunk's summed loss and, when `grad_logits` is given, d(loss)/d(logits).
using ChunkLossWithGradient = std::function<at::Tensor(const at::Tensor& logits, int64_t start, at::Tensor* grad_logits)>;

// The loss of inputs @ weight^T taken chunk by chunk, its gradients formed in the forward pass
// (one chunk's logits alive at a time); backward only scales them by the incoming gradient.
struct ChunkedLinearLoss : public torch::autograd::Function<ChunkedLinearLoss> {
  // `weight`: the head's trainable dense weight (an autograd input), or undefined.
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& inputs, const at::Tensor& weight,
                            const Projection* head, const ChunkLossWithGradient* chunk_loss, int64_t chunk_tokens) {
    const bool want_inputs = inputs.requires_grad(), want_weight = weight.defined() && weight.requires_grad();
    at::Tensor grad_inputs = want_inputs ? at::empty_like(inputs) : at::Tensor();
    at::Tensor grad_weight = want_weight ? at::zeros(weight.sizes(), weight.options().dtype(at::kFloat)) : at::Tensor();
    const at::Tensor weight_f32 = head->dense_weight(at::kFloat);
    at::Tensor total = at::zeros({}, inputs.options().dtype(at::kFloat));
    for (int64_t start = 0; start < inputs.size(0); start += chunk_tokens) {
      const int64_t rows = std::min(chunk_tokens, inputs.size(0) - start);
      const at::Tensor x = inputs.narrow(0, start, rows);  // [n, H]
      const at::Tensor logits = head->storage().linear(x, std::nullopt).to(at::kFloat);  // [n, V] as the model computes it
      at::Tensor grad_logits;
      total = total + (*chunk_loss)(logits, start, &grad_logits);
      if (want_inputs) {
        const at::Tensor grad_rows = grad_inputs.narrow(0, start, rows);
        if (grad_rows.scalar_type() == at::kFloat) matmul_into(grad_logits, weight_f32, grad_rows);
        else grad_rows.copy_(at::matmul(grad_logits, weight_f32));
      }
      if (want_weight) matmul_into(grad_logits.t(), x.to(at::kFloat), grad_weight, /*accumulate=*/true);
    }
    ctx->saved_data["grad_inputs"] = grad_inputs;
    ctx->saved_data["grad_weight"] = want_weight ? grad_weight.to(weight.scalar_type()) : at::Tensor();
    return total;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const at::Tensor scale = grad_outputs[0];
    at::Tensor grad_inputs = ctx->saved_data["grad_inputs"].toTensor();
    at::Tensor grad_weight = ctx->saved_data["grad_weight"].toTensor();
    if (grad_inputs.defined()) grad_inputs = grad_inputs * scale.to(grad_inputs.scalar_type());
    if (grad_weight.defined()) grad_weight = grad_weight * scale.to(grad_weight.scalar_type());
    return {grad_inputs, grad_weight, at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

at::Tensor run_chunked(const at::Tensor& inputs, const Projection& head, const ChunkLossWithGradient& chunk_loss,
                       int64_t chunk_tokens) {
  const at::Tensor weight = head.storage().trainable_tensor();
  const bool needs_grad =
      at::GradMode::is_enabled() && (inputs.requires_grad() || (weight.defined() && weight.requires_grad()));
  if (needs_grad) return ChunkedLinearLoss::apply(inputs, weight, &head, &chunk_loss, chunk_tokens);
  at::Tensor total = at::zeros({}, inputs.options().dtype(at::kFloat));
  for (int64_t start = 0; start < inputs.size(0); start += chunk_tokens) {
    const int64_t rows = std::min(chunk_tokens, inputs.size(0) - start);
    const at::Tensor logits = head.storage().linear(inputs.narrow(0, start, rows), std::nullopt).to(at::kFloat);
    total = total + chunk_loss(logits, start, nullptr);
  }
  return total;
}

}  // namespace

at::Tensor chunked_linear_loss(const at::Tensor& inputs, const Projection& head, const ChunkLoss& chunk_loss,
                               int64_t chunk_tokens) {
  // Any loss: autograd differentiates each chunk's loss on its own.
  const ChunkLossWithGradient with_gradient = [&](const at::Tensor& logits, int64_t start, at::Tensor* grad_logits) {
    if (grad_logits == nullptr) return chunk_loss(logits, start);
    at::AutoGradMode enable(true);
    const at::Tensor leaf = logits.detach().requires_grad_(true);
    const at::Tensor loss = chunk_loss(leaf, start);
    *grad_logits = torch::autograd::grad({loss}, {leaf})[0];
    return loss.detach();
  };
  return run_chunked(inputs, head, with_gradient, chunk_tokens);
}

at::Tensor TokenLoss::mean() const { return sum / static_cast<double>(std::max<int64_t>(tokens, 1)); }

TokenLoss causal_lm_loss(const at::Tensor& hidden, const Projection& head, const at::Tensor& labels,
                         int64_t chunk_tokens) {
  const int64_t width = hidden.size(-1);
  // Shift: position t predicts label t+1 (next_token_targets).
  at::Tensor inputs = hidden.narrow(1, 0, hidden.size(1) - 1).reshape({-1, width});
  const NextTokenTargets next = next_token_targets(labels.to(hidden.device()));
  at::Tensor targets = next.labels.reshape({-1});
  // Only positions with a label go through the output projection: prompt tokens and padding
  // cost no [V x H] matmul at all (their loss and gradient are zero anyway).
  const at::Tensor counted = next.counted.reshape({-1}).nonzero().squeeze(1);
  TokenLoss loss;
  loss.tokens = counted.size(0);
  if (loss.tokens < targets.size(0)) {
    inputs = inputs.index_select(0, counted);
    targets = targets.index_select(0, counted);
  }
  if (chunk_tokens <= 0) {
    constexpr int64_t kChunkLogits = int64_t{1} << 26;  // values per chunk of logits (and of their gradient)
    chunk_tokens = std::clamp<int64_t>(kChunkLogits / std::max<int64_t>(1, head.out_features()), 64, 1024);
  }
  // Cross-entropy's gradient has a closed form (softmax - one_hot): no autograd per chunk.
  loss.sum = run_chunked(
      inputs, head,
      [&](const at::Tensor& logits, int64_t start, at::Tensor* grad_logits) {
        return chunk_loss(logits, targets.narrow(0, start, logits.size(0)), grad_logits);
      },
      chunk_tokens);
  return loss;
}

}  // namespace retort
