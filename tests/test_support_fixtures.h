// Access to the reference data written by tests/reference/fixture_*.py.
#pragma once

#include <filesystem>
#include <string>

namespace retort::test {

// build/fixtures/<name>; fails the calling test (via exception) when missing.
std::filesystem::path fixture_dir(const std::string& name);

}  // namespace retort::test
