#include "data/batch.h"

#include <ATen/ATen.h>

namespace retort {

NextTokenTargets next_token_targets(const at::Tensor& labels) {
  NextTokenTargets targets;
  targets.labels = labels.narrow(1, 1, labels.size(1) - 1);
  targets.counted = targets.labels != kIgnoreIndex;
  return targets;
}

int64_t Batch::trained_tokens() const { return next_token_targets(labels).counted.sum().item<int64_t>(); }

}  // namespace retort
