#include "distill/kd_step.h"

#include <ATen/ATen.h>

#include "distill/teacher_cache.h"
#include "io/error.h"
#include "lora/lora.h"
#include "models/gemm.h"

namespace retort {
namespace {

// Hidden states [B, T, H] -> the rows that predict a trained label, [N, H] (position t predicts
// label t + 1), in the order causal_lm_loss counts them.
at::Tensor counted_rows(const at::Tensor& hidden, const at::Tensor& counted) {
  const at::Tensor inputs = hidden.narrow(1, 0, hidden.size(1) - 1).reshape({-1, hidden.size(-1)});
  return inputs.index_select(0, counted);
}

void check_alpha(const KdStepOptions& options) {
  if (!(options.alpha >= 0 && options.alpha <= 1)) throw bad_input("distill.alpha must be in [0, 1]").key("distill.alpha");
  if (options.shared_vocab <= 0) throw internal_error("KdStep needs the shared vocabulary size");
}

}  // namespace

ForwardOptions batch_forward_options(const Batch& batch) {
  ForwardOptions options;
  options.attention_mask = batch.attention_mask;
  options.position_ids = batch.position_ids;
  options.segment_ids = batch.segment_ids;
  return options;
}

KdStep::KdStep(CausalLM& student, CausalLM& teacher, const KdStepOptions& options)
    : student_(student), teacher_(&teacher), options_(options), trainable_(prepare_trainable_parameters(student)) {
  check_alpha(options);
  for (auto& p : teacher.parameters()) p.set_requires_grad(false);
  teacher.eval();
  student.train();
}

KdStep::KdStep(CausalLM& student, std::shared_ptr<const TeacherCache> cache, const KdStepOptions& options)
    : student_(student), cache_(std::move(cache)), options_(options), trainable_(prepare_trainable_parameters(student)) {
  check_alpha(options);
  student.train();
}

StepResult KdStep::forward(const Batch& batch) {
  const ForwardOptions options = batch_forward_options(batch);
  const at::Tensor hidden = student_.forward_hidden(batch.input_ids, options);  // [B, T, H]
  const at::Tensor targets = batch.labels.narrow(1, 1, batch.labels.size(1) - 1).reshape({-1}).to(hidden.device());
  const at::Tensor counted = (targets != kIgnoreIndex).nonzero().squeeze(1);  // [N] rows of [B * (T - 1)]
  TeacherChunkSource teacher;
  at::Tensor teacher_rows, teacher_weight;  // online: [N, H_teacher], [V, H_teacher]
  TopkBlock cached;                         // offline: [N, k] targets
  if (options_.alpha == 0) {
    // Cross-entropy alone: the teacher is not needed.
  } else if (teacher_ != nullptr) {
    at::NoGradGuard no_grad;
    teacher_weight = teacher_->output_weight().narrow(0, 0, options_.shared_vocab);
    // A teacher spread over devices ends where its output weight is (the embedding's device when tied).
    const at::Tensor teacher_hidden = teacher_->forward_hidden(batch.input_ids, options).to(teacher_weight.device());
    teacher_rows = counted_rows(teacher_hidden, counted.to(teacher_hidden.device()));
    teacher = [&](int64_t start, int64_t rows) {
      at::NoGradGuard no_grad;
      TeacherChunk chunk;
      chunk.logits = gemm_linear(teacher_rows.narrow(0, start, rows), teacher_weight).to(at::kFloat).to(hidden.device());
      return chunk;
    };
  } else {
    cached = cache_->batch(batch.sequence_ids);
    if (cached.tokens() != counted.numel()) {
      throw bad_input("the teacher cache holds " + std::to_string(cached.tokens()) + " targets for this batch, which trains " +
                      std::to_string(counted.numel()) + " tokens")
          .file(cache_->dir())
          .key("distill.teacher_cache");
    }
    teacher = [&](int64_t start, int64_t rows) {
      TeacherChunk chunk;
      chunk.topk_ids = cached.ids.narrow(0, start, rows).to(hidden.device());
      chunk.topk_log_probs = cached.log_probs.narrow(0, start, rows).to(hidden.device());
      chunk.rest_log_mass = cached.rest_log_mass.narrow(0, start, rows).to(hidden.device());
      return chunk;
    };
  }
  const TokenLoss loss = distillation_loss(counted_rows(hidden, counted), student_.output_weight(),
                                           targets.index_select(0, counted), teacher, options_.kd, options_.alpha,
                                           options_.shared_vocab, options_.chunk_tokens);
  return {loss.sum, loss.tokens};
}

void KdStep::set_training(bool training) { set_lora_training(student_, training); }

}  // namespace retort
