#include "finetune/sft_step.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include "io/error.h"
#include "train/losses.h"

namespace retort {

SftStep::SftStep(CausalLM& model) : model_(model), trainable_(prepare_trainable_parameters(model)) { model.train(); }

StepResult SftStep::forward(const Batch& batch) {
  const at::Tensor hidden = model_.forward_hidden(batch.input_ids, batch_forward_options(batch));
  const TokenLoss loss = causal_lm_loss(hidden, model_.output_head(), batch.labels);
  return {loss.sum, loss.tokens, loss.tokens};
}

void SftStep::set_training(bool training) { set_lora_training(model_, training); }

}  // namespace retort
