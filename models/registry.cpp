#include "models/registry.h"

#include <map>
#include <mutex>

#include "io/error.h"
#include "io/text.h"

namespace retort {

// Family registration hooks, one line per family file pair. (Static initialisers in a
// static library would be dropped by the linker, so families are listed here once.)
void register_llama_family();

namespace {

std::map<std::string, ModelFactory>& factories() {
  static std::map<std::string, ModelFactory> table;
  return table;
}

void ensure_registered() {
  static std::once_flag once;
  std::call_once(once, [] { register_llama_family(); });
}

}  // namespace

void register_architecture(const std::string& hf_name, ModelFactory factory) {
  factories()[hf_name] = std::move(factory);
}

std::vector<std::string> supported_architectures() {
  ensure_registered();
  std::vector<std::string> names;
  for (const auto& [name, factory] : factories()) names.push_back(name);
  return names;
}

std::shared_ptr<CausalLM> create_model(const ModelConfig& config, const std::string& source) {
  ensure_registered();
  auto it = factories().find(config.architecture);
  if (it == factories().end()) {
    throw bad_input("architecture '" + config.architecture + "' is not supported (supported: " +
                    join(supported_architectures(), ", ") + ")")
        .file(source)
        .key("architectures");
  }
  return it->second(config);
}

}  // namespace retort
