#include "tests/test_support.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>

#include "tests/test_paths.h"

extern char** environ;

namespace retort::test {

std::string env_or_empty(const char* name) {
  if (const char* value = std::getenv(name); value != nullptr && *value != '\0') return value;
  const std::string key = name;
  if (key == "RETORT_BIN") return RETORT_TEST_DEFAULT_BIN;
  if (key == "RETORT_SOURCE_DIR") return RETORT_TEST_DEFAULT_SOURCE_DIR;
  if (key == "RETORT_PYTHON") return RETORT_TEST_DEFAULT_PYTHON;
  if (key == "RETORT_FIXTURES_DIR") return RETORT_TEST_DEFAULT_FIXTURES_DIR;
  return "";
}

namespace {

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

}  // namespace

CommandResult run_reference_script(const std::string& script, const std::vector<std::string>& args) {
  std::vector<std::string> argv = {env_or_empty("RETORT_PYTHON"), env_or_empty("RETORT_SOURCE_DIR") + "/tests/reference/" + script};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_program(argv);
}

Started::Started(const std::vector<std::string>& argv, const std::string& input) {
  capture_ = std::filesystem::temp_directory_path() /
             ("retort-run-" + std::to_string(::getpid()) + "-" + std::to_string(reinterpret_cast<uintptr_t>(this)));
  std::filesystem::create_directories(capture_);
  const std::string out_path = (capture_ / "stdout").string();
  const std::string err_path = (capture_ / "stderr").string();
  const std::string in_path = (capture_ / "stdin").string();
  std::ofstream(in_path, std::ios::binary) << input;
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, in_path.c_str(), O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&actions, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  sigset_t defaults, none;
  sigfillset(&defaults);
  sigemptyset(&none);
  posix_spawnattr_setsigdefault(&attributes, &defaults);
  posix_spawnattr_setsigmask(&attributes, &none);
  posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
  std::vector<char*> c_argv;
  for (const std::string& arg : argv) c_argv.push_back(const_cast<char*>(arg.c_str()));
  c_argv.push_back(nullptr);
  pid_t pid = 0;
  const int spawn_rc = posix_spawnp(&pid, c_argv[0], &actions, &attributes, c_argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attributes);
  if (spawn_rc != 0) throw std::runtime_error("cannot start " + argv[0]);
  pid_ = pid;
}

Started::~Started() {
  if (!finished_ && pid_ > 0) {
    ::kill(pid_, SIGKILL);
    int status = 0;
    waitpid(pid_, &status, 0);
  }
  std::error_code ignored;
  std::filesystem::remove_all(capture_, ignored);
}

std::string Started::err_so_far() const { return read_file(capture_ / "stderr"); }

CommandResult Started::finish() {
  int status = 0;
  waitpid(pid_, &status, 0);
  finished_ = true;
  CommandResult result;
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  result.out = read_file(capture_ / "stdout");
  result.err = read_file(capture_ / "stderr");
  return result;
}

CommandResult run_program(const std::vector<std::string>& argv, const std::string& input) {
  return Started(argv, input).finish();
}

Started start_retort(const std::vector<std::string>& args) {
  const std::string binary = env_or_empty("RETORT_BIN");
  if (binary.empty()) throw std::runtime_error("RETORT_BIN is not set (run the tests through ctest)");
  std::vector<std::string> argv{binary};
  argv.insert(argv.end(), args.begin(), args.end());
  return Started(argv);
}

CommandResult run_retort(const std::vector<std::string>& args, const std::string& input) {
  const std::string binary = env_or_empty("RETORT_BIN");
  if (binary.empty()) throw std::runtime_error("RETORT_BIN is not set (run the tests through ctest)");
  std::vector<std::string> argv{binary};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_program(argv, input);
}

TempDir::TempDir() {
  std::random_device device;
  const auto base = std::filesystem::temp_directory_path();
  for (int attempt = 0; attempt < 100; ++attempt) {
    auto candidate = base / ("retort-test-" + std::to_string(device()));
    if (std::filesystem::create_directory(candidate)) {
      path_ = candidate;
      return;
    }
  }
  throw std::runtime_error("cannot create a temp directory");
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

}  // namespace retort::test

#include "tests/test_support_fixtures.h"

namespace retort::test {

std::filesystem::path fixture_dir(const std::string& name) {
  const std::string root = env_or_empty("RETORT_FIXTURES_DIR");
  if (root.empty()) throw std::runtime_error("RETORT_FIXTURES_DIR is not set (run the tests through ctest)");
  const std::filesystem::path dir = std::filesystem::path(root) / name;
  if (!std::filesystem::exists(dir / ".stamp")) {
    throw std::runtime_error("fixture '" + name + "' missing at " + dir.string() +
                             " (ctest runs tests/reference/fixture_" + name + ".py first)");
  }
  return dir;
}

}  // namespace retort::test
