// Gemma 3 (text): Gemma3ForCausalLM from config.json (model_type gemma3_text), with its local and
// global layers (layer_types, or every sliding_window_pattern-th layer global) and their RoPE
// bases (rope_local_base_freq / rope_theta, or transformers v5's per-layer-type rope_parameters).
// GGUF: llama.cpp's `gemma3` architecture (norm weights stored with Gemma's +1 folded in, one
// sliding window, the local RoPE base in rope.freq_base_swa, every sixth layer global unless
// attention.sliding_window_pattern says otherwise, the attention scale derived from the size).
// Linear RoPE scaling (4B and larger) applies to the global layers only, in both forms.
#pragma once

#include "models/family.h"

namespace retort {

ModelFamily gemma3_family();

}  // namespace retort
