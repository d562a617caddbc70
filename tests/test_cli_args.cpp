// The option parser behind every subcommand.
#include <gtest/gtest.h>

#include "cli/args.h"
#include "io/error.h"

namespace retort::cli {
namespace {

CommandSpec sample_spec() {
  return {"generate", "Generate.", "retort generate --model PATH",
          {{"model", "PATH", "model directory or .gguf"},
           {"max-new-tokens", "N", "tokens to generate"},
           {"temperature", "T", "sampling temperature"},
           {"json", "", "print JSON"},
           {"stop", "TEXT", "stop string", true}},
          0, 0, [](const ParsedArgs&) { return 0; }};
}

TEST(CliArgs, ParsesValuesFlagsAndEqualsForm) {
  const ParsedArgs parsed = parse_command_args(
      sample_spec(), {"--model", "m.gguf", "--max-new-tokens=32", "--json", "--stop", "a", "--stop", "b"});
  EXPECT_EQ(parsed.get_or("model", ""), "m.gguf");
  EXPECT_EQ(parsed.get_int("max-new-tokens", 0), 32);
  EXPECT_TRUE(parsed.has("json"));
  EXPECT_EQ(parsed.values.at("stop"), (std::vector<std::string>{"a", "b"}));
  EXPECT_DOUBLE_EQ(parsed.get_double("temperature", 0.7), 0.7);
}

void expect_bad_input(const std::vector<std::string>& args, const std::string& fragment) {
  try {
    parse_command_args(sample_spec(), args);
    FAIL() << "expected bad input for " << fragment;
  } catch (const Error& error) {
    EXPECT_EQ(error.kind(), ErrorKind::kBadInput);
    EXPECT_NE(std::string(error.what()).find(fragment), std::string::npos) << error.what();
  }
}

TEST(CliArgs, RejectsBadInputWithClearMessages) {
  expect_bad_input({"--modle", "x"}, "did you mean '--model'");
  expect_bad_input({"--model"}, "needs a value");
  expect_bad_input({"--json=1"}, "takes no value");
  expect_bad_input({"--model", "a", "--model", "b"}, "given twice");
  expect_bad_input({"stray"}, "unexpected argument 'stray'");
  expect_bad_input({"-m"}, "unknown option '-m'");
}

TEST(CliArgs, TypedGettersNameTheOption) {
  const ParsedArgs parsed = parse_command_args(sample_spec(), {"--max-new-tokens", "12x", "--temperature", "hot"});
  EXPECT_THROW(parsed.get_int("max-new-tokens", 0), Error);
  try {
    parsed.get_double("temperature", 0);
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("--temperature"), std::string::npos);
  }
}

TEST(CliArgs, HelpListsOptions) {
  const std::string help = command_help(sample_spec());
  EXPECT_NE(help.find("--max-new-tokens N"), std::string::npos);
  EXPECT_NE(help.find("--help"), std::string::npos);
}

}  // namespace
}  // namespace retort::cli
