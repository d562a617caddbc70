// Models by their HF `architectures` name, built by the family that registers it (models/family.h).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "models/causal_lm.h"

namespace retort {

// Builds an uninitialised model for config.architecture; bad_input listing the supported names.
std::shared_ptr<CausalLM> create_model(const ModelConfig& config, const std::string& source);
std::vector<std::string> supported_architectures();

}  // namespace retort
