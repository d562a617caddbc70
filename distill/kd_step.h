// Logit distillation as a step of the one training loop: the student learns
// alpha * KD + (1 - alpha) * CE over the trained tokens, both chunked over the output projections
// (distill/losses.h), against either a frozen teacher run without autograd on the same batch
// (online) or the teacher's top-k targets read from a cache (offline; no teacher in memory).
#pragma once

#include <memory>

#include "distill/losses.h"
#include "models/causal_lm.h"
#include "train/step.h"

namespace retort {

class TeacherCache;

struct KdStepOptions {
  KdOptions kd;
  double alpha = 0.5;        // weight of the KD term; 1 - alpha on the cross-entropy with the labels
  int64_t shared_vocab = 0;  // rows both output projections are compared on (shared_vocabulary_size)
  int64_t chunk_tokens = 1024;
};

class KdStep : public TrainingStep {
 public:
  // The student trains as SftStep's would (LoRA adapters when it carries any, else every weight);
  // the teacher is put in eval mode and never receives gradients.
  KdStep(CausalLM& student, CausalLM& teacher, const KdStepOptions& options);
  // Offline: targets from the cache, by the batch's sequence ids.
  KdStep(CausalLM& student, std::shared_ptr<const TeacherCache> cache, const KdStepOptions& options);

  StepResult forward(const Batch& batch) override;
  void set_training(bool training) override;
  std::vector<std::pair<std::string, at::Tensor>> named_trainable_parameters() override { return trainable_; }

 private:
  CausalLM& student_;
  CausalLM* teacher_ = nullptr;
  std::shared_ptr<const TeacherCache> cache_;
  KdStepOptions options_;
  std::vector<std::pair<std::string, at::Tensor>> trainable_;
};

}  // namespace retort
