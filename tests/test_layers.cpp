// The declared layers (LAYERS at the repository root) hold: no file includes a header from a
// higher layer or from a sibling on its own line.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "test_support.h"

namespace retort {
namespace {

namespace fs = std::filesystem;

// Folder -> its line number in LAYERS (siblings share one).
std::map<std::string, int> read_layers(const fs::path& file) {
  std::ifstream in(file);
  std::map<std::string, int> level;
  int line_number = 0;
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    ++line_number;
    std::istringstream words(line);
    for (std::string folder; words >> folder;) level[folder] = line_number;
  }
  return level;
}

// "folder/file.cpp:12 includes run/run.h (layer 9 above 5)" for each include of a folder that
// `folder` may not know.
std::vector<std::string> violations_in(const std::string& folder, const std::string& file, const std::string& text,
                                       const std::map<std::string, int>& level) {
  static const std::regex include(R"(^\s*#\s*include\s*"([A-Za-z0-9_]+)/([^"]+)\")");
  std::vector<std::string> found;
  std::istringstream lines(text);
  int line_number = 0;
  for (std::string line; std::getline(lines, line);) {
    ++line_number;
    std::smatch match;
    if (!std::regex_search(line, match, include)) continue;
    const std::string target = match[1];
    const auto target_level = level.find(target);
    if (target == folder || target_level == level.end()) continue;  // own folder, or generated/ headers
    const int own = level.at(folder);
    if (target_level->second < own) continue;
    found.push_back(folder + "/" + file + ":" + std::to_string(line_number) + " includes " + target + "/" +
                    std::string(match[2]) + (target_level->second == own ? " (a sibling)" : " (a higher layer)"));
  }
  return found;
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

fs::path source_dir() { return test::env_or_empty("RETORT_SOURCE_DIR"); }

TEST(Layers, EveryFolderIncludesOnlyItselfAndLowerLayers) {
  const auto level = read_layers(source_dir() / "LAYERS");
  ASSERT_GE(level.size(), 10u) << "LAYERS lists the folders";
  std::vector<std::string> violations;
  int files = 0;
  for (const auto& [folder, _] : level) {
    ASSERT_TRUE(fs::is_directory(source_dir() / folder)) << "LAYERS names a folder that does not exist: " << folder;
    for (const auto& entry : fs::directory_iterator(source_dir() / folder)) {
      const std::string extension = entry.path().extension().string();
      if (extension != ".h" && extension != ".cpp" && extension != ".cu" && extension != ".in") continue;
      ++files;
      for (auto& v : violations_in(folder, entry.path().filename().string(), read_text(entry.path()), level)) {
        violations.push_back(v);
      }
    }
  }
  EXPECT_GT(files, 100);
  std::string report;
  for (const std::string& v : violations) report += "\n  " + v;
  EXPECT_TRUE(violations.empty()) << "includes against LAYERS:" << report;
}

// The check itself catches what it must: an upward include, a sibling's header, and not an
// include of its own folder or a lower one.
TEST(Layers, APlantedUpwardOrSiblingIncludeIsCaught) {
  const auto level = read_layers(source_dir() / "LAYERS");
  const std::string planted = "#include \"data/batch.h\"\n#include \"io/error.h\"\n#include \"run/run.h\"\n";
  const auto upward = violations_in("data", "loader.cpp", planted, level);
  ASSERT_EQ(upward.size(), 1u);
  EXPECT_EQ(upward[0], "data/loader.cpp:3 includes run/run.h (a higher layer)");
  const auto sibling = violations_in("distill", "kd_step.cpp", "  #include \"export/export.h\"\n", level);
  ASSERT_EQ(sibling.size(), 1u);
  EXPECT_EQ(sibling[0], "distill/kd_step.cpp:1 includes export/export.h (a sibling)");
  EXPECT_TRUE(violations_in("cli", "main.cpp", "#include \"run/run.h\"\n#include \"generated/cli/version.h\"\n", level)
                  .empty());
}

}  // namespace
}  // namespace retort
