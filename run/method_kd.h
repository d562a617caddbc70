// method: kd -- logit distillation from a teacher run alongside the student (online);
// method: kd_offline -- from the top-k targets `retort cache-teacher` wrote (no teacher in memory).
// Both train alpha * KD + (1 - alpha) * CE (distill/kd_step.h).
#pragma once

#include "run/method.h"

namespace retort::run {

TrainingMethod kd_method();
TrainingMethod kd_offline_method();

}  // namespace retort::run
