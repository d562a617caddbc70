// Mistral (v0.1-v0.3): the Llama decoder with a sliding attention window; GGUF stores it as
// `llama` (llama.cpp attends to the full context).
#pragma once

#include "models/family.h"

namespace retort {

ModelFamily mistral_family();

}  // namespace retort
