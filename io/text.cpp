#include "io/text.h"

#include <cstdlib>

#include <algorithm>

namespace retort {

size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> previous(b.size() + 1), current(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) previous[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    current[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t substitute = previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      current[j] = std::min({previous[j] + 1, current[j - 1] + 1, substitute});
    }
    std::swap(previous, current);
  }
  return previous[b.size()];
}

std::string nearest_match(std::string_view word, const std::vector<std::string>& candidates) {
  // Closest by edit distance; ties go to the longer common prefix ("lrate" -> "lr", not "name").
  auto common_prefix = [&](const std::string& candidate) {
    size_t n = 0;
    while (n < word.size() && n < candidate.size() && word[n] == candidate[n]) ++n;
    return n;
  };
  std::string best;
  size_t best_distance = std::max<size_t>(2, word.size() / 3) + 1;
  size_t best_prefix = 0;
  for (const std::string& candidate : candidates) {
    const size_t distance = edit_distance(word, candidate);
    const size_t prefix = common_prefix(candidate);
    if (distance < best_distance || (distance == best_distance && !best.empty() && prefix > best_prefix)) {
      best_distance = distance;
      best_prefix = prefix;
      best = candidate;
    }
  }
  return best;
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) out += (i ? ", " : "") + std::to_string(shape[i]);
  return out + "]";
}

std::string join(const std::vector<std::string>& parts, std::string_view separator) {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (i > 0) out += separator;
    out += parts[i];
  }
  return out;
}

std::string expand_home(const std::string& path) {
  if (path.rfind("~/", 0) == 0) {
    if (const char* home = std::getenv("HOME")) return std::string(home) + path.substr(1);
  }
  return path;
}

}  // namespace retort
