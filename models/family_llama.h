// The Llama family (Llama 2, 3, 3.1/3.2): config.json, GGUF `llama` metadata and tensor names.
#pragma once

#include "models/family.h"

namespace retort {

ModelFamily llama_family();

// What the Llama-derived families share: the decoder, the HF <-> GGUF names, attention and MLP
// biases as config.json spells them; `permutes_qk`: llama.cpp's LLAMA rope row order in GGUF.
ModelFamily llama_like_family(std::string name, std::string hf_architecture, std::string gguf_architecture,
                              bool permutes_qk);

}  // namespace retort
