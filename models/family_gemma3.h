// Gemma 3 (text): Gemma3ForCausalLM from config.json (model_type gemma3_text), with its local and
// global layers (layer_types, or every sliding_window_pattern-th layer global) and their RoPE
// bases (rope_local_base_freq / rope_theta, or transformers v5's per-layer-type rope_parameters).
// Not yet: GGUF files (llama.cpp stores Gemma norms with the +1 folded in) and RoPE scaling on the
// global layers (Gemma 3 4B and larger); both are refused with a clear error.
#pragma once

#include "models/family.h"

namespace retort {

ModelFamily gemma3_family();

}  // namespace retort
