// Architectures by their HF `architectures` name. Each family registers itself from its own
// file pair (models/llama.cpp registers Llama, Mistral and Qwen2).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "models/causal_lm.h"

namespace retort {

using ModelFactory = std::function<std::shared_ptr<CausalLM>(const ModelConfig&)>;

void register_architecture(const std::string& hf_name, ModelFactory factory);
// Builds an uninitialised model for config.architecture; bad_input listing the supported names.
std::shared_ptr<CausalLM> create_model(const ModelConfig& config, const std::string& source);
std::vector<std::string> supported_architectures();

}  // namespace retort
