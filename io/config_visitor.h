// Typed configuration structs describe their fields once, through a visitor; the same
// description reads YAML (with line numbers, type checks, unknown-key errors with the nearest
// valid key), writes the resolved YAML back, and lists every valid dotted key for overrides.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace retort {

class ConfigVisitor {
 public:
  virtual ~ConfigVisitor() = default;
  virtual void field(const std::string& key, bool& value, const std::string& help) = 0;
  virtual void field(const std::string& key, int64_t& value, const std::string& help) = 0;
  virtual void field(const std::string& key, double& value, const std::string& help) = 0;
  virtual void field(const std::string& key, std::string& value, const std::string& help) = 0;
  virtual void field(const std::string& key, std::vector<std::string>& value, const std::string& help) = 0;
  // A string restricted to `choices`.
  virtual void choice(const std::string& key, std::string& value, const std::vector<std::string>& choices,
                      const std::string& help) = 0;
  virtual void section(const std::string& key, const std::function<void(ConfigVisitor&)>& body) = 0;
};

// Reads `yaml_text` (from `source`, for messages) into a struct described by `describe`, after
// applying `overrides` ("a.b=value", value parsed as YAML). Unknown keys, wrong types and bad
// choices are bad_input naming the file, line and dotted key, with a suggestion for typos.
void read_yaml_config(const std::string& yaml_text, const std::string& source,
                      const std::vector<std::string>& overrides,
                      const std::function<void(ConfigVisitor&)>& describe);

// The resolved config as YAML (every field, defaults included).
std::string write_yaml_config(const std::function<void(ConfigVisitor&)>& describe);

// Every valid dotted key ("optimizer.lr", ...).
std::vector<std::string> config_keys(const std::function<void(ConfigVisitor&)>& describe);

}  // namespace retort
