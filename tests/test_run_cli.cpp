// `retort run` end to end on a real model (SmolLM2-135M-Instruct GGUF, LoRA, CPU): it trains,
// writes metrics, checkpoints and a PEFT adapter that `retort generate --adapter` loads, and a
// run stopped at step 2 and resumed in a new process logs exactly the losses of an
// uninterrupted run. Bad setups exit 2 naming the key.
#include <gtest/gtest.h>

#include <fstream>

#include <nlohmann/json.hpp>

#include "io/atomic_file.h"
#include "test_support.h"
#include "test_support_fixtures.h"

namespace retort {
namespace {

namespace fs = std::filesystem;

std::string smollm2_path() {
  return nlohmann::json::parse(read_text_file((test::fixture_dir("smollm2") / "smollm2.json").string()))["gguf"];
}

// A small recipe: six short conversations, 64-token packed rows, LoRA rank 4.
fs::path write_recipe(const fs::path& dir) {
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
                             "training:\n  max_steps: 4\n  eval_every_steps: 2\ncheckpoint:\n  every_steps: 2\n"
                             "logging:\n  tensorboard: false\n";
  write_file_atomic((dir / "recipe.yaml").string(), recipe);
  return dir / "recipe.yaml";
}

std::vector<nlohmann::json> metrics(const fs::path& out) {
  std::vector<nlohmann::json> lines;
  std::ifstream in(out / "metrics.jsonl");
  for (std::string line; std::getline(in, line);) {
    nlohmann::json entry = nlohmann::json::parse(line);
    entry.erase("tokens_per_s");  // wall-clock dependent
    lines.push_back(entry);
  }
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

  // A directory holding the uninterrupted run's step-2 checkpoint (and the metrics up to it),
  // as a run stopped there leaves it: a new process resumes and continues identically.
  fs::create_directories(split);
  fs::copy(whole / "checkpoint-000002", split / "checkpoint-000002", fs::copy_options::recursive);
  {
    std::ifstream in(whole / "metrics.jsonl");
    std::ofstream out(split / "metrics.jsonl");
    std::string line;
    for (int i = 0; i < 2 && std::getline(in, line); ++i) out << line << "\n";
  }
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

}  // namespace
}  // namespace retort
