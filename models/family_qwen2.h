// Qwen2 / Qwen2.5: the Llama decoder with q/k/v biases and NEOX-style rope (no q/k row
// permutation in GGUF), optionally a sliding window; chat in ChatML.
#pragma once

#include "models/family.h"

namespace retort {

ModelFamily qwen2_family();

}  // namespace retort
