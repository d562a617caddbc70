#include "finetune/sft_step.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <cmath>

#include "distill/kd_step.h"
#include "io/error.h"
#include "train/losses.h"

namespace retort {

SftStep::SftStep(CausalLM& model) : model_(model), trainable_(prepare_trainable_parameters(model)) { model.train(); }

StepResult SftStep::forward(const Batch& batch) {
  const at::Tensor hidden = model_.forward_hidden(batch.input_ids, batch_forward_options(batch));
  const TokenLoss loss = causal_lm_loss(hidden, model_.output_weight(), batch.labels);
  return {loss.sum, loss.tokens};
}

void SftStep::set_training(bool training) { set_lora_training(model_, training); }

int64_t attach_lora(CausalLM& model, const LoraSpec& spec, const std::vector<std::string>& targets, uint64_t seed) {
  at::Generator generator = at::detail::createCPUGenerator(seed);
  int64_t attached = 0;
  c10::NoGradGuard no_grad;
  for (auto& [path, projection] : projections_of(model)) {
    const std::string leaf = path.substr(path.rfind('.') + 1);
    if (std::find(targets.begin(), targets.end(), leaf) == targets.end()) continue;
    auto adapter = std::make_shared<LoraAdapter>(*projection, spec);
    // nn.Linear's default init (kaiming_uniform with a = sqrt(5)): U(-1/sqrt(in), 1/sqrt(in)).
    const double bound = 1.0 / std::sqrt(static_cast<double>(projection->in_features()));
    adapter->lora_a.copy_(at::empty(adapter->lora_a.sizes(), at::kFloat).uniform_(-bound, bound, generator));
    if (spec.use_dora) {
      adapter->magnitude = at::linalg_vector_norm(projection->weight.to(at::kFloat), 2, {1}, false, std::nullopt);
    }
    projection->adapter = adapter;
    ++attached;
  }
  if (attached == 0) throw bad_input("no projection matches lora.target_modules").key("lora.target_modules");
  return attached;
}

}  // namespace retort
