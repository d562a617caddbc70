#include "distill/kd_step.h"

#include <ATen/ATen.h>

#include "distill/teacher_cache.h"
#include "io/error.h"
#include "lora/lora.h"

namespace retort {
namespace {

void check_alpha(const KdStepOptions& options) {
  if (!(options.alpha >= 0 && options.alpha <= 1)) throw bad_input("distill.alpha must be in [0, 1]").key("distill.alpha");
  if (options.shared_vocab <= 0) throw internal_error("KdStep needs the shared vocabulary size");
}

}  // namespace

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
  const NextTokenTargets next = next_token_targets(batch.labels.to(hidden.device()));
  const at::Tensor targets = next.labels.reshape({-1});
  const at::Tensor counted = next.counted.reshape({-1}).nonzero().squeeze(1);  // [N] rows of [B * (T - 1)]
  TeacherChunkSource teacher;
  at::Tensor teacher_rows;                  // online: [N, H_teacher]
  std::shared_ptr<Projection> teacher_head;  // online: the shared rows of the teacher's head
  TopkBlock cached;                         // offline: [N, k] targets
  if (options_.alpha == 0) {
    // Cross-entropy alone: the teacher is not needed.
  } else if (teacher_ != nullptr) {
    at::NoGradGuard no_grad;
    teacher_head = teacher_->output_head().first_outputs(options_.shared_vocab);
    // A teacher spread over devices ends where its output weight is (the embedding's device when tied).
    const at::Tensor teacher_hidden =
        teacher_->forward_hidden(batch.input_ids, options).to(teacher_head->storage().device());
    teacher_rows = predicting_rows(teacher_hidden, counted.to(teacher_hidden.device()));
    teacher = [&](int64_t start, int64_t rows) {
      at::NoGradGuard no_grad;
      TeacherChunk chunk;
      chunk.logits = teacher_head->forward_base(teacher_rows.narrow(0, start, rows)).to(at::kFloat).to(hidden.device());
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
  const TokenLoss loss = distillation_loss(predicting_rows(hidden, counted), student_.output_head(),
                                           targets.index_select(0, counted), teacher, options_.kd, options_.alpha,
                                           options_.shared_vocab, options_.chunk_tokens);
  return {loss.sum, loss.tokens, loss.tokens, loss.parts};
}

void KdStep::set_training(bool training) { set_lora_training(student_, training); }

}  // namespace retort
