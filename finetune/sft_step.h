// The supervised fine-tuning step (full or LoRA) plugged into the training loop: next-token
// cross-entropy on the trained tokens, computed in chunks over the output projection.
#pragma once

#include "lora/lora.h"
#include "models/causal_lm.h"
#include "train/step.h"

namespace retort {

class SftStep : public TrainingStep {
 public:
  // LoRA when the model's projections carry adapters (only their A/B/magnitude train; the base is
  // frozen); otherwise full fine-tuning of every parameter.
  explicit SftStep(CausalLM& model);

  StepResult forward(const Batch& batch) override;
  void set_training(bool training) override;
  // LoRA: PEFT's adapter keys ("base_model.model.<module>.lora_A.weight"); full: HF names.
  std::vector<std::pair<std::string, at::Tensor>> named_trainable_parameters() override { return trainable_; }

 private:
  CausalLM& model_;
  std::vector<std::pair<std::string, at::Tensor>> trainable_;
};

}  // namespace retort
