#include "io/hub_cache.h"

#include <algorithm>
#include <cctype>
#include <optional>
#include <cstdlib>
#include <fstream>
#include <regex>

#include "io/error.h"
#include "io/text.h"

namespace retort {
namespace fs = std::filesystem;

namespace {

std::string env(const char* name) {
  const char* value = std::getenv(name);
  return value == nullptr ? "" : value;
}

struct HubId {
  std::string org, name, revision, file;  // revision "main" unless given; file "" for the folder
};

// ORG/NAME[@REVISION][/FILE...]: hub names are letters, digits, '-', '_' and '.'.
std::optional<HubId> parse_hub_id(const std::string& text) {
  static const std::regex pattern(R"(([A-Za-z0-9][\w.-]*)/([\w.-]+?)(?:@([\w.-]+))?((?:/[^/]+)*))");
  std::smatch match;
  if (!std::regex_match(text, match, pattern)) return std::nullopt;
  HubId id{match[1].str(), match[2].str(), match[3].matched ? match[3].str() : "main", match[4].str()};
  if (!id.file.empty()) id.file.erase(0, 1);
  if (id.name == "." || id.name == ".." || id.org == "..") return std::nullopt;
  return id;
}

std::string read_ref(const fs::path& path) {
  std::ifstream in(path);
  std::string commit;
  std::getline(in, commit);
  while (!commit.empty() && std::isspace(static_cast<unsigned char>(commit.back()))) commit.pop_back();
  return commit;
}

}  // namespace

fs::path hub_cache_dir() {
  if (const std::string cache = env("HF_HUB_CACHE"); !cache.empty()) return expand_home(cache);
  if (const std::string home = env("HF_HOME"); !home.empty()) return fs::path(expand_home(home)) / "hub";
  if (const std::string xdg = env("XDG_CACHE_HOME"); !xdg.empty()) return fs::path(xdg) / "huggingface" / "hub";
  return fs::path(expand_home("~/.cache")) / "huggingface" / "hub";
}

std::vector<std::string> cached_hub_models(const fs::path& cache) {
  std::vector<std::string> ids;
  std::error_code error;
  for (const auto& entry : fs::directory_iterator(cache, error)) {
    const std::string folder = entry.path().filename().string();
    if (!entry.is_directory() || folder.rfind("models--", 0) != 0) continue;
    const std::string rest = folder.substr(8);
    const size_t split = rest.find("--");
    if (split != std::string::npos) ids.push_back(rest.substr(0, split) + "/" + rest.substr(split + 2));
  }
  std::sort(ids.begin(), ids.end());
  return ids;
}

std::string resolve_model_path(const std::string& given, const std::string& key) {
  const std::string path = expand_home(given);
  std::error_code error;
  if (path.empty() || fs::exists(path, error)) return path;
  const std::optional<HubId> id = parse_hub_id(path);
  if (!id) return path;
  const fs::path cache = hub_cache_dir();
  const fs::path repo = cache / ("models--" + id->org + "--" + id->name);
  const std::string name = id->org + "/" + id->name;
  auto missing = [&](const std::string& what) {
    std::vector<std::string> cached = cached_hub_models(cache);
    const std::string listing = cached.empty() ? "it holds no models" : "it holds: " + join(cached, ", ");
    return bad_input("'" + given + "' is not a file or folder, and as a Hugging Face id " + what + " in the cache " +
                     cache.string() + " (" + listing + "; nothing is downloaded: fetch it with huggingface-cli " +
                     "download, or set HF_HUB_CACHE / HF_HOME)")
        .key(key);
  };
  if (!fs::is_directory(repo)) throw missing("'" + name + "' is not");
  // A revision is a ref (branch or tag) naming a commit, or a commit's snapshot itself.
  std::string commit = id->revision;
  if (fs::is_regular_file(repo / "refs" / id->revision)) commit = read_ref(repo / "refs" / id->revision);
  const fs::path snapshot = repo / "snapshots" / commit;
  if (!fs::is_directory(snapshot)) throw missing("'" + name + "' has no snapshot for revision '" + id->revision + "'");
  const fs::path target = id->file.empty() ? snapshot : snapshot / id->file;
  if (!fs::exists(target)) throw missing("'" + name + "' has no file '" + id->file + "'");
  return target.string();
}

}  // namespace retort
