// The `retort` executable's contract: exit 0 on success, 2 on bad input with one
// clear message, 1 on internal failure; never a crash.
#include <gtest/gtest.h>

#include <torch/headeronly/version.h>

#include "cli/commands.h"
#include "tests/test_support.h"

namespace retort::test {
namespace {

TEST(CliExitCodes, VersionNamesLibTorchAndCuda) {
  const CommandResult result = run_retort({"--version"});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NE(result.out.find("retort 0."), std::string::npos) << result.out;
  EXPECT_NE(result.out.find(std::string("LibTorch ") + TORCH_VERSION), std::string::npos);
  EXPECT_NE(result.out.find("CUDA usable: "), std::string::npos);
  EXPECT_EQ(std::string(TORCH_VERSION), "2.11.0");
  EXPECT_TRUE(result.err.empty()) << "no warning spam on CPU: " << result.err;
}

TEST(CliExitCodes, HelpForEveryCommand) {
  const CommandResult top = run_retort({"--help"});
  EXPECT_EQ(top.exit_code, 0);
  for (const auto& spec : retort::cli::command_table()) {
    EXPECT_NE(top.out.find(spec.name), std::string::npos) << spec.name;
    const CommandResult result = run_retort({spec.name, "--help"});
    EXPECT_EQ(result.exit_code, 0) << spec.name << ": " << result.err;
    EXPECT_NE(result.out.find("usage: retort " + spec.name), std::string::npos) << result.out;
  }
  for (const char* name : {"run", "generate", "chat", "eval", "logits", "tokenize", "data", "export",
                           "cache-teacher", "bench"}) {
    EXPECT_EQ(run_retort({name, "--help"}).exit_code, 0) << name;
  }
}

TEST(CliExitCodes, UnknownCommandIsBadInputWithSuggestion) {
  const CommandResult result = run_retort({"genrate"});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_NE(result.err.find("unknown command 'genrate'; did you mean 'generate'?"), std::string::npos)
      << result.err;
  EXPECT_EQ(result.err.rfind("retort: error: ", 0), 0u) << result.err;
}

TEST(CliExitCodes, UnknownFlagIsBadInput) {
  EXPECT_EQ(run_retort({"--frobnicate"}).exit_code, 2);
  const CommandResult result = run_retort({"generate", "--frobnicate"});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_NE(result.err.find("unknown option '--frobnicate'"), std::string::npos) << result.err;
  EXPECT_EQ(run_retort({"--version", "extra"}).exit_code, 2);
}

TEST(CliExitCodes, NoCommandIsBadInputAndShowsUsage) {
  const CommandResult result = run_retort({});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_NE(result.err.find("usage: retort COMMAND"), std::string::npos);
}

TEST(CliExitCodes, MissingPositionalIsBadInput) {
  const CommandResult result = run_retort({"run"});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_NE(result.err.find("missing argument"), std::string::npos) << result.err;
}

}  // namespace
}  // namespace retort::test
