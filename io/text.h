// Small text helpers shared by the CLI, recipe parsing and error messages.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace retort {

// Levenshtein distance (insert, delete, substitute; each costs 1).
size_t edit_distance(std::string_view a, std::string_view b);

// The candidate closest to `word`, or "" when none is close enough to be a plausible typo
// (distance at most max(2, len/3)).
std::string nearest_match(std::string_view word, const std::vector<std::string>& candidates);

// "[2, 3, 4]" for messages about tensor shapes.
std::string shape_text(const std::vector<int64_t>& shape);

// "~/x" -> "$HOME/x" (recipes and flags name model paths under the home directory).
std::string expand_home(const std::string& path);

// "a, b, c"
std::string join(const std::vector<std::string>& parts, std::string_view separator);

}  // namespace retort
