// method: sft -- supervised fine-tuning (LoRA or full): next-token cross-entropy on the trained
// tokens (finetune/sft_step.h).
#pragma once

#include "run/method.h"

namespace retort::run {

TrainingMethod sft_method();

}  // namespace retort::run
