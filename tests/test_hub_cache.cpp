// Models named by Hugging Face id, found offline in a cache folder laid out the way
// huggingface_hub writes it (models--ORG--NAME/refs/REVISION -> snapshots/COMMIT/...).
#include <gtest/gtest.h>

#include <cstdlib>
#include <nlohmann/json.hpp>

#include "io/atomic_file.h"
#include "io/error.h"
#include "io/hub_cache.h"
#include "tests/test_support.h"
#include "tests/test_support_fixtures.h"

namespace retort {
namespace {

namespace fs = std::filesystem;

// Points HF_HUB_CACHE (or HF_HOME) at a folder for the test's lifetime.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    ::setenv(name, value.c_str(), 1);
  }
  ~ScopedEnv() {
    if (old_) ::setenv(name_, old_->c_str(), 1);
    else ::unsetenv(name_);
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

// models--org--tiny with main -> c0ffee (config.json) and tag v1 -> beef01 (model.gguf).
fs::path lay_out_cache(const fs::path& root) {
  const fs::path repo = root / "models--org--tiny";
  fs::create_directories(repo / "refs");
  fs::create_directories(repo / "snapshots" / "c0ffee");
  fs::create_directories(repo / "snapshots" / "beef01");
  write_file_atomic((repo / "refs" / "main").string(), "c0ffee");  // as the hub writes it: no newline
  write_file_atomic((repo / "refs" / "v1").string(), "beef01\n");
  write_file_atomic((repo / "snapshots" / "c0ffee" / "config.json").string(), "{}");
  write_file_atomic((repo / "snapshots" / "beef01" / "model.gguf").string(), "GGUF");
  fs::create_directories(root / "models--other--model" / "snapshots");
  fs::create_directories(root / "datasets--org--data");  // not a model: never listed
  return repo;
}

TEST(HubCache, IdsResolveToTheirSnapshotByRefCommitAndFile) {
  test::TempDir dir;
  const fs::path repo = lay_out_cache(dir.path() / "hub");
  const ScopedEnv cache("HF_HUB_CACHE", (dir.path() / "hub").string());
  EXPECT_EQ(resolve_model_path("org/tiny", "model.path"), (repo / "snapshots" / "c0ffee").string());
  EXPECT_EQ(resolve_model_path("org/tiny@v1", "model.path"), (repo / "snapshots" / "beef01").string());
  EXPECT_EQ(resolve_model_path("org/tiny@beef01", "model.path"), (repo / "snapshots" / "beef01").string());
  EXPECT_EQ(resolve_model_path("org/tiny@v1/model.gguf", "model.path"),
            (repo / "snapshots" / "beef01" / "model.gguf").string());
  EXPECT_EQ(cached_hub_models(dir.path() / "hub"), (std::vector<std::string>{"org/tiny", "other/model"}));
  // A real file or folder wins over an id, and what is neither stays as given for the loader.
  fs::create_directories(dir.path() / "org" / "tiny");
  const fs::path cwd = fs::current_path();
  fs::current_path(dir.path());
  EXPECT_EQ(resolve_model_path("org/tiny", "model.path"), "org/tiny");
  fs::current_path(cwd);
  EXPECT_EQ(resolve_model_path("/no/such/model.gguf", "model.path"), "/no/such/model.gguf");
  EXPECT_EQ(resolve_model_path("./local/model", "model.path"), "./local/model");
}

TEST(HubCache, HfHomeAndTheDefaultLocation) {
  test::TempDir dir;
  const fs::path repo = lay_out_cache(dir.path() / "home" / "hub");
  const ScopedEnv no_cache("HF_HUB_CACHE", "");
  const ScopedEnv home("HF_HOME", (dir.path() / "home").string());
  EXPECT_EQ(hub_cache_dir(), dir.path() / "home" / "hub");
  EXPECT_EQ(resolve_model_path("org/tiny", "model.path"), (repo / "snapshots" / "c0ffee").string());
  const ScopedEnv no_home("HF_HOME", "");
  const ScopedEnv user_home("HOME", dir.path().string());
  const ScopedEnv no_xdg("XDG_CACHE_HOME", "");
  EXPECT_EQ(hub_cache_dir(), dir.path() / ".cache" / "huggingface" / "hub");
}

TEST(HubCache, WhatIsNotCachedIsAClearErrorListingWhatIs) {
  test::TempDir dir;
  lay_out_cache(dir.path() / "hub");
  const ScopedEnv cache("HF_HUB_CACHE", (dir.path() / "hub").string());
  const auto message = [](const std::string& id) {
    try {
      resolve_model_path(id, "model.path");
    } catch (const Error& error) {
      return std::string(error.what());
    }
    return std::string("(accepted)");
  };
  const std::string missing = message("google/gemma-3-270m");
  EXPECT_NE(missing.find("key 'model.path'"), std::string::npos) << missing;
  EXPECT_NE(missing.find("'google/gemma-3-270m' is not in the cache " + (dir.path() / "hub").string()), std::string::npos)
      << missing;
  EXPECT_NE(missing.find("it holds: org/tiny, other/model"), std::string::npos) << missing;
  EXPECT_NE(message("org/tiny@v2").find("no snapshot for revision 'v2'"), std::string::npos);
  EXPECT_NE(message("org/tiny/model.gguf").find("no file 'model.gguf'"), std::string::npos);  // it is in v1 only
  const ScopedEnv empty("HF_HUB_CACHE", (dir.path() / "empty").string());
  EXPECT_NE(message("org/tiny").find("it holds no models"), std::string::npos);
}

// The commands and a recipe take the id: the cached copy of a tiny Qwen3 generates what the
// folder itself generates, and `retort run` trains from it.
TEST(HubCacheCli, CommandsAndRecipesTakeACachedId) {
  test::TempDir dir;
  const fs::path snapshot = dir.path() / "hub" / "models--acme--tiny-qwen3" / "snapshots" / "0123abcd";
  fs::create_directories(snapshot.parent_path().parent_path() / "refs");
  fs::create_directories(snapshot.parent_path());
  write_file_atomic((snapshot.parent_path().parent_path() / "refs" / "main").string(), "0123abcd");
  fs::copy(test::fixture_dir("export") / "qwen3", snapshot, fs::copy_options::recursive);
  const ScopedEnv cache("HF_HUB_CACHE", (dir.path() / "hub").string());
  const std::vector<std::string> generate = {"generate", "--prompt-ids", "1,2,3", "--max-new-tokens", "6", "--json"};
  auto with_model = [&](const std::string& model) {
    std::vector<std::string> args = generate;
    args.insert(args.begin() + 1, {"--model", model});
    return test::run_retort(args);
  };
  const test::CommandResult by_id = with_model("acme/tiny-qwen3");
  const test::CommandResult by_path = with_model((test::fixture_dir("export") / "qwen3").string());
  ASSERT_EQ(by_id.exit_code, 0) << by_id.err;
  EXPECT_EQ(by_id.out, by_path.out);
  const test::CommandResult missing = with_model("acme/absent");
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_NE(missing.err.find("it holds: acme/tiny-qwen3"), std::string::npos) << missing.err;
  write_file_atomic((dir.path() / "chats.jsonl").string(),
                    R"({"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]})"
                    "\n");
  write_file_atomic((dir.path() / "recipe.yaml").string(),
                    "method: sft\nmodel:\n  path: acme/tiny-qwen3\ndata:\n  train: " + (dir.path() / "chats.jsonl").string() +
                        "\ntraining:\n  max_steps: 1\ncheckpoint:\n  output_dir: " + (dir.path() / "run").string() + "\n");
  const test::CommandResult run = test::run_retort({"run", (dir.path() / "recipe.yaml").string()});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_TRUE(fs::exists(dir.path() / "run" / "metrics.jsonl"));
}

}  // namespace
}  // namespace retort
