// Helpers shared by the test suites: running the `retort` binary, temp dirs.
#pragma once

#include <chrono>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

namespace retort::test {

struct CommandResult {
  int exit_code = -1;
  std::string out;  // stdout
  std::string err;  // stderr
};

// Runs the built `retort` (path from $RETORT_BIN) with the given arguments, no shell;
// `input` is its standard input.
CommandResult run_retort(const std::vector<std::string>& args, const std::string& input = "");

// Runs any program with arguments (no shell), capturing stdout and stderr.
CommandResult run_program(const std::vector<std::string>& argv, const std::string& input = "");

// A program started in the background with its output captured (no shell), with the default
// handling of every signal and none blocked, whatever the test process does with them.
class Started {
 public:
  explicit Started(const std::vector<std::string>& argv, const std::string& input = "");
  ~Started();  // kills and reaps the process if finish() was not called
  Started(const Started&) = delete;
  Started& operator=(const Started&) = delete;
  int pid() const { return pid_; }
  std::string err_so_far() const;  // what it wrote to stderr until now
  CommandResult finish();          // waits for it to end

 private:
  std::filesystem::path capture_;
  int pid_ = -1;
  bool finished_ = false;
};

// Polls `done` every `poll` until it holds or two minutes pass (a background process's progress).
template <typename Predicate>
void wait_until(Predicate done, std::chrono::microseconds poll = std::chrono::milliseconds(5)) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (!done() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(poll);
}

// `retort ARGS` started in the background.
Started start_retort(const std::vector<std::string>& args);

// Runs tests/reference/SCRIPT with the test venv's Python.
CommandResult run_reference_script(const std::string& script, const std::vector<std::string>& args);

// A fresh directory under the system temp dir, removed when the object dies.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// $NAME, else the build-time default for RETORT_BIN, RETORT_SOURCE_DIR, RETORT_PYTHON,
// RETORT_FIXTURES_DIR, else "".
std::string env_or_empty(const char* name);

}  // namespace retort::test
