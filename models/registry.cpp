#include "models/registry.h"

#include <algorithm>

#include "models/family.h"

namespace retort {

std::vector<std::string> supported_architectures() {
  std::vector<std::string> names;
  for (const ModelFamily& family : model_families()) {
    names.insert(names.end(), family.hf_architectures.begin(), family.hf_architectures.end());
  }
  std::sort(names.begin(), names.end());
  return names;
}

std::shared_ptr<CausalLM> create_model(const ModelConfig& config, const std::string& source) {
  const ModelFamily& family = family_for_architecture(config.architecture, source);
  std::shared_ptr<CausalLM> model = family.create(config);
  model->set_family(family);
  return model;
}

}  // namespace retort
