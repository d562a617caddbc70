// Typed reads of a config.json object with errors that name the file and key: shared by the
// common fields (models/config.cpp) and each family's own (models/family_*.cpp).
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace retort {

struct HfConfigReader {
  const nlohmann::json& json;
  const std::string& source;

  bool has(const char* key) const { return json.contains(key) && !json[key].is_null(); }
  int64_t integer(const char* key, int64_t fallback) const;
  double number(const nlohmann::json& object, const std::string& key, double fallback) const;
  bool boolean(const char* key, bool fallback) const;
  std::string string(const char* key, const std::string& fallback) const;
  // An id or a list of ids.
  std::vector<int64_t> ids(const nlohmann::json& object, const char* key) const;
  // `layer_types` ("sliding_attention" | "full_attention" per layer) as sliding flags; nullopt
  // when absent (the family derives them).
  std::optional<std::vector<bool>> sliding_layer_types() const;
};

}  // namespace retort
