// `retort run` end to end on a real model (SmolLM2-135M-Instruct GGUF, LoRA, CPU): it trains,
// writes metrics, checkpoints and a PEFT adapter that `retort generate --adapter` loads, and a
// run stopped at step 2 and resumed in a new process logs exactly the losses of an
// uninterrupted run. SIGINT, SIGTERM and SIGUSR1 stop it with a checkpoint; SIGKILL and a
// second SIGINT leave a resumable directory. Bad setups exit 2 naming the key.
#include <gtest/gtest.h>

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <random>
#include <thread>

#include <nlohmann/json.hpp>

#include "io/atomic_file.h"
#include "io/stop_signal.h"
#include "train/trainer.h"
#include "test_support.h"
#include "test_support_fixtures.h"

namespace retort {
namespace {

namespace fs = std::filesystem;

std::string smollm2_path() {
  return nlohmann::json::parse(read_text_file((test::fixture_dir("smollm2") / "smollm2.json").string()))["gguf"];
}

// A small recipe: six short conversations, 64-token packed rows, LoRA rank 4.
fs::path write_recipe(const fs::path& dir, int64_t steps = 4, int64_t every = 2, bool tensorboard = false) {
  std::ofstream data(dir / "chats.jsonl");
  for (int i = 0; i < 6; ++i) {
    nlohmann::json line = {{"messages",
                            {{{"role", "user"}, {"content", "What goes with dish " + std::to_string(i) + "?"}},
                             {{"role", "assistant"}, {"content", "Rice and beans, friend number " + std::to_string(i) + "."}}}}};
    data << line.dump() << "\n";
  }
  data.close();
  const std::string recipe = "model:\n  path: " + smollm2_path() + "\ndata:\n  train: " + (dir / "chats.jsonl").string() +
                             "\n  max_seq_len: 64\n  packing: true\n  validation_fraction: 0.2\nlora:\n  rank: 4\n"
                             "  alpha: 8\n  dropout: 0.1\n  target_modules: [q_proj, v_proj]\noptimizer:\n  lr: 1.0e-3\n"
                             "training:\n  max_steps: " + std::to_string(steps) + "\n  eval_every_steps: 2\ncheckpoint:\n  every_steps: " +
                             std::to_string(every) + "\n"
                             "logging:\n  tensorboard: " + (tensorboard ? "true" : "false") + "\n";
  write_file_atomic((dir / "recipe.yaml").string(), recipe);
  return dir / "recipe.yaml";
}

std::vector<nlohmann::json> metrics(const fs::path& out) {
  std::vector<nlohmann::json> lines;
  std::ifstream in(out / "metrics.jsonl");
  for (std::string line; std::getline(in, line);) {
    nlohmann::json entry = nlohmann::json::parse(line);
    for (const char* key : {"tokens_per_s", "seconds", "peak_rss_mb"}) entry.erase(key);  // wall-clock dependent
    lines.push_back(entry);
  }
  return lines;
}

// `to` holds what `from` (a finished run) held after `step`: that checkpoint and those metrics.
void copy_run_until(const fs::path& from, const fs::path& to, int step) {
  char name[32];
  std::snprintf(name, sizeof name, "checkpoint-%06d", step);
  fs::create_directories(to);
  fs::copy(from / name, to / name, fs::copy_options::recursive);
  std::ifstream in(from / "metrics.jsonl");
  std::ofstream out(to / "metrics.jsonl");
  std::string line;
  for (int i = 0; i < step && std::getline(in, line); ++i) out << line << "\n";
}

size_t line_count(const fs::path& file) {
  std::ifstream in(file);
  size_t lines = 0;
  for (std::string line; std::getline(in, line);) lines += line.empty() ? 0 : 1;
  return lines;
}

TEST(RunCli, TrainsResumesExactlyAndWritesAnAdapterGenerateLoads) {
  test::TempDir temp;
  const fs::path recipe = write_recipe(temp.path());
  const fs::path whole = temp.path() / "whole", split = temp.path() / "split";
  auto result = test::run_retort({"run", recipe.string(), "checkpoint.output_dir=" + whole.string()});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NE(result.out.find("trained 4 of 4 steps"), std::string::npos) << result.out;
  const auto expected = metrics(whole);
  ASSERT_EQ(expected.size(), 4u);
  EXPECT_TRUE(expected[1].contains("val_loss"));
  EXPECT_LT(expected[3]["loss"].get<double>(), expected[0]["loss"].get<double>());

  // A directory as a run stopped at step 2 leaves it: a new process resumes and continues identically.
  copy_run_until(whole, split, 2);
  result = test::run_retort({"run", recipe.string(), "checkpoint.output_dir=" + split.string()});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NE(result.err.find("resuming from"), std::string::npos) << result.err;
  EXPECT_EQ(metrics(split), expected);
  EXPECT_EQ(read_text_file((split / "adapter" / "adapter_model.safetensors").string()),
            read_text_file((whole / "adapter" / "adapter_model.safetensors").string()));

  result = test::run_retort({"generate", "--model", smollm2_path(), "--adapter", (whole / "adapter").string(),
                             "--prompt", "What goes with dish 3?", "--max-new-tokens", "8"});
  EXPECT_EQ(result.exit_code, 0) << result.err;

  // resume=false refuses a directory with checkpoints; a missing model names the key.
  result = test::run_retort({"run", recipe.string(), "checkpoint.output_dir=" + whole.string(), "checkpoint.resume=false"});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_NE(result.err.find("checkpoint.resume"), std::string::npos) << result.err;
  result = test::run_retort({"run", recipe.string(), "model.path=" + (temp.path() / "nope").string(),
                             "checkpoint.output_dir=" + (temp.path() / "x").string()});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_NE(result.err.find("model.path"), std::string::npos) << result.err;
}

TEST(RunCli, SigkillAtAnyMomentLeavesAResumableDirectory) {
  test::TempDir temp;
  const fs::path recipe = write_recipe(temp.path(), /*steps=*/6, /*every=*/1);
  const fs::path whole = temp.path() / "whole", killed = temp.path() / "killed";
  auto result = test::run_retort({"run", recipe.string(), "checkpoint.output_dir=" + whole.string()});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const auto expected = metrics(whole);
  // Kill as soon as the third checkpoint is complete: the process is then training step 4 or
  // writing its checkpoint.
  test::Started run = test::start_retort({"run", recipe.string(), "checkpoint.output_dir=" + killed.string()});
  test::wait_until([&] { return fs::exists(killed / "checkpoint-000003" / "trainer.json"); });
  ::kill(run.pid(), SIGKILL);
  ASSERT_EQ(run.finish().exit_code, 128 + SIGKILL) << "the run finished before it could be killed";
  result = test::run_retort({"run", recipe.string(), "checkpoint.output_dir=" + killed.string()});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NE(result.err.find("resuming from"), std::string::npos) << result.err;
  EXPECT_EQ(metrics(killed), expected);
}

TEST(RunCli, DiskFullWhileCheckpointingKeepsThePreviousCheckpoint) {
  test::TempDir temp;
  const fs::path recipe = write_recipe(temp.path(), /*steps=*/4, /*every=*/1);
  const fs::path whole = temp.path() / "whole", full = temp.path() / "full";
  auto result = test::run_retort({"run", recipe.string(), "checkpoint.output_dir=" + whole.string(), "checkpoint.keep_last=9"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  copy_run_until(whole, full, 2);
  // The same run continued with files limited to 256 KiB (the adapter's checkpoint is larger):
  // writing checkpoint 3 fails as on a full disk.
  result = test::run_program({"/bin/bash", "-c", "trap '' XFSZ; ulimit -f 256; exec \"$0\" \"$@\"",
                              test::env_or_empty("RETORT_BIN"), "run", recipe.string(),
                              "checkpoint.output_dir=" + full.string(), "checkpoint.keep_last=1"});
  EXPECT_EQ(result.exit_code, 1) << result.err;
  EXPECT_NE(result.err.find("File too large"), std::string::npos) << result.err;
  EXPECT_TRUE(fs::exists(full / "checkpoint-000002" / "trainer.json"));
  EXPECT_FALSE(fs::exists(full / "checkpoint-000003"));
  // The checkpoint left behind is whole: the run resumes from it and ends as the uninterrupted one.
  result = test::run_retort({"run", recipe.string(), "checkpoint.output_dir=" + full.string()});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(metrics(full), metrics(whole));
}

TEST(RunCli, AnUnwritableOutputDirectoryIsBadInput) {
  test::TempDir temp;
  const fs::path recipe = write_recipe(temp.path());
  std::ofstream(temp.path() / "a-file") << "x";
  const auto result = test::run_retort({"run", recipe.string(), "checkpoint.output_dir=" + (temp.path() / "a-file" / "run").string()});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_NE(result.err.find("checkpoint.output_dir"), std::string::npos) << result.err;
  EXPECT_NE(result.err.find("cannot be written"), std::string::npos) << result.err;
}

// SIGINT, SIGTERM and SIGUSR1 at a random moment of training (checkpoints due only at the end):
// the step in progress ends, a checkpoint of it is written, the exit status is 128 + the signal,
// and a rerun resumes to the same metrics as a run never stopped.
TEST(RunCli, ASignalWritesACheckpointAndTheRunResumesExactly) {
  test::TempDir temp;
  const fs::path recipe = write_recipe(temp.path(), /*steps=*/10, /*every=*/100);
  const fs::path whole = temp.path() / "whole";
  auto result = test::run_retort({"run", recipe.string(), "checkpoint.output_dir=" + whole.string()});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const auto expected = metrics(whole);
  const unsigned seed = std::random_device{}();
  std::mt19937 random(seed);
  for (const int signal_number : {SIGINT, SIGTERM, SIGUSR1}) {
    const fs::path out = temp.path() / ("stopped-" + std::to_string(signal_number));
    const size_t after_lines = std::uniform_int_distribution<size_t>(1, 4)(random);
    const int delay_ms = std::uniform_int_distribution<int>(0, 300)(random);
    SCOPED_TRACE("signal " + std::to_string(signal_number) + " after " + std::to_string(after_lines) + " steps + " +
                 std::to_string(delay_ms) + " ms (seed " + std::to_string(seed) + ")");
    test::Started run = test::start_retort({"run", recipe.string(), "checkpoint.output_dir=" + out.string()});
    test::wait_until([&] { return line_count(out / "metrics.jsonl") >= after_lines; });
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
    ::kill(run.pid(), signal_number);
    result = run.finish();
    ASSERT_EQ(result.exit_code, 128 + signal_number) << result.out << result.err;
    const auto saved = list_checkpoints(out.string());
    ASSERT_FALSE(saved.empty()) << result.out;
    EXPECT_NE(result.out.find("checkpoint: " + saved.back()), std::string::npos) << result.out;
    EXPECT_NE(result.out.find("resume with: retort run " + recipe.string()), std::string::npos) << result.out;
    EXPECT_NE(result.err.find("stopped by " + signal_name(signal_number)), std::string::npos) << result.err;
    const auto stopped = metrics(out);
    ASSERT_FALSE(stopped.empty());
    EXPECT_EQ(stopped.back()["stopped"], signal_name(signal_number));
    EXPECT_FALSE(fs::exists(out / "adapter")) << "a stopped run writes its adapter when a rerun finishes it";
    result = test::run_retort({"run", recipe.string(), "checkpoint.output_dir=" + out.string()});
    ASSERT_EQ(result.exit_code, 0) << result.err;
    EXPECT_NE(result.err.find("resuming from " + saved.back()), std::string::npos) << result.err;
    EXPECT_EQ(metrics(out), expected);
  }
}

// A second Ctrl-C ends the process at once; the directory is then as after SIGKILL: resumable.
TEST(RunCli, ASecondSigintExitsAtOnceAndTheDirectoryStillResumes) {
  test::TempDir temp;
  const fs::path recipe = write_recipe(temp.path(), /*steps=*/6, /*every=*/1);
  const fs::path whole = temp.path() / "whole", out = temp.path() / "twice";
  auto result = test::run_retort({"run", recipe.string(), "checkpoint.output_dir=" + whole.string()});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  test::Started run = test::start_retort({"run", recipe.string(), "checkpoint.output_dir=" + out.string()});
  test::wait_until([&] { return line_count(out / "metrics.jsonl") >= 2; });
  ::kill(run.pid(), SIGINT);
  test::wait_until([&] { return run.err_so_far().find("SIGINT: finishing the step") != std::string::npos; });
  const auto second = std::chrono::steady_clock::now();
  ::kill(run.pid(), SIGINT);
  result = run.finish();
  EXPECT_LT(std::chrono::steady_clock::now() - second, std::chrono::seconds(1));
  EXPECT_EQ(result.exit_code, 130) << result.err;
  result = test::run_retort({"run", recipe.string(), "checkpoint.output_dir=" + out.string()});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(metrics(out), metrics(whole));
}

// Steps of TensorBoard's train/loss curve in DIR/tensorboard, as the tensorboard package reads them.
std::vector<int64_t> tensorboard_steps(const fs::path& dir) {
  const auto result = test::run_reference_script("read_tensorboard.py", {(dir / "tensorboard").string()});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  const auto scalars = nlohmann::json::parse(result.out);
  EXPECT_TRUE(scalars.contains("train/loss")) << dir << ": " << result.out << result.err;
  std::vector<int64_t> steps;
  if (scalars.contains("train/loss")) {
    for (const auto& point : scalars["train/loss"]) steps.push_back(point[0].get<int64_t>());
  }
  return steps;
}

// A run killed before its first checkpoint starts its logs afresh when run again; one killed
// after a checkpoint keeps the logs up to it. Either way each step is logged once.
TEST(RunCli, ARestartLogsEveryStepOnceInMetricsAndTensorBoard) {
  test::TempDir temp;
  const std::vector<int64_t> all_steps = {1, 2, 3, 4, 5, 6};
  for (const int64_t every : {100, 2}) {
    SCOPED_TRACE("checkpoint.every_steps " + std::to_string(every));
    const fs::path recipe = write_recipe(temp.path(), /*steps=*/6, every, /*tensorboard=*/true);
    const fs::path whole = temp.path() / ("whole-" + std::to_string(every)), out = temp.path() / ("killed-" + std::to_string(every));
    auto result = test::run_retort({"run", recipe.string(), "checkpoint.output_dir=" + whole.string()});
    ASSERT_EQ(result.exit_code, 0) << result.err;
    ASSERT_EQ(tensorboard_steps(whole), all_steps);
    test::Started run = test::start_retort({"run", recipe.string(), "checkpoint.output_dir=" + out.string()});
    test::wait_until([&] { return line_count(out / "metrics.jsonl") >= 3; });
    ::kill(run.pid(), SIGKILL);
    ASSERT_EQ(run.finish().exit_code, 128 + SIGKILL);
    EXPECT_EQ(list_checkpoints(out.string()).empty(), every == 100);
    result = test::run_retort({"run", recipe.string(), "checkpoint.output_dir=" + out.string()});
    ASSERT_EQ(result.exit_code, 0) << result.err;
    EXPECT_EQ(metrics(out), metrics(whole));
    EXPECT_EQ(tensorboard_steps(out), all_steps);
  }
}

}  // namespace
}  // namespace retort
