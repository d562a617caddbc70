// Text in and out through the CLI with a real model (SmolLM2-135M GGUF): tokenization equal to
// llama.cpp's, text generation equal to llama.cpp's greedy continuation, chat rendering with
// per-token roles, and the interactive chat loop.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "io/atomic_file.h"
#include "tests/test_support.h"
#include "tests/test_support_fixtures.h"

namespace retort {
namespace {

nlohmann::json smollm2_reference() {
  return nlohmann::json::parse(read_text_file((test::fixture_dir("smollm2") / "smollm2.json").string()));
}

TEST(TextCli, TokenizeEqualsLlamaCpp) {
  const auto reference = smollm2_reference();
  const auto result = test::run_retort({"tokenize", "--model", reference["gguf"], "--text",
                                        reference["prompt"].get<std::string>(), "--json"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const auto json = nlohmann::json::parse(result.out);
  EXPECT_EQ(json["ids"], reference["prompt_ids"]);
  EXPECT_EQ(json["pieces"][0], "<|im_start|>");
}

TEST(TextCli, RawTextPromptContinuesAsLlamaCpp) {
  const auto reference = smollm2_reference();
  const auto expected = reference["llama_cpp_ids"].get<std::vector<int64_t>>();
  const auto result = test::run_retort({"generate", "--model", reference["gguf"], "--prompt",
                                        reference["prompt"].get<std::string>(), "--raw", "--max-new-tokens",
                                        std::to_string(expected.size()), "--json"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const auto json = nlohmann::json::parse(result.out);
  EXPECT_EQ(json["ids"].get<std::vector<int64_t>>(), expected);
  EXPECT_FALSE(json["text"].get<std::string>().empty());
  EXPECT_NE(json["text"].get<std::string>().find("cat"), std::string::npos) << json["text"];
}

TEST(TextCli, ChatPromptUsesTheTemplateAndStopsAtEndOfTurn) {
  const auto reference = smollm2_reference();
  const auto result = test::run_retort({"generate", "--model", reference["gguf"], "--prompt",
                                        "What is the capital of France?", "--max-new-tokens", "40", "--json"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const auto json = nlohmann::json::parse(result.out);
  EXPECT_NE(json["text"].get<std::string>().find("Paris"), std::string::npos) << json["text"];
  EXPECT_EQ(json["ids"].back().get<int64_t>(), 2) << "stops on <|im_end|>";
  EXPECT_LT(json["ids"].size(), 40u);
}

TEST(TextCli, TokenizeChatShowsRolesAndTrainedTokens) {
  const auto reference = smollm2_reference();
  test::TempDir temp;
  const std::string chat = (temp.path() / "chat.json").string();
  write_file_atomic(chat, R"([{"role": "user", "content": "Hi there"},
                              {"role": "assistant", "content": "Hello! How can I help?"}])");
  const auto result = test::run_retort({"tokenize", "--model", reference["gguf"], "--chat", chat, "--json"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const auto json = nlohmann::json::parse(result.out);
  EXPECT_EQ(json["template"], "smollm2");
  const auto& ids = json["ids"];
  const auto& roles = json["roles"];
  const auto& trained = json["trainable"];
  ASSERT_EQ(ids.size(), roles.size());
  std::string trained_text;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (trained[i].get<bool>()) {
      EXPECT_EQ(roles[i], "assistant") << i;
      trained_text += json["pieces"][i].get<std::string>();
    }
  }
  // The assistant's words and its end-of-turn token are trained; nothing else.
  EXPECT_EQ(trained_text, "Hello!ĠHowĠcanĠIĠhelp?<|im_end|>");
  EXPECT_EQ(ids.back(), 198);  // the newline after <|im_end|> is the template's, not trained
  EXPECT_FALSE(trained.back().get<bool>());
}

TEST(TextCli, InteractiveChatKeepsHistoryAndResets) {
  const auto reference = smollm2_reference();
  const auto result = test::run_retort(
      {"chat", "--model", reference["gguf"], "--max-new-tokens", "24", "--system", "Answer in one short sentence."},
      "What is the capital of France?\n/reset\n/system Be brief.\n/exit\n");
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NE(result.out.find("Paris"), std::string::npos) << result.out;
  EXPECT_NE(result.out.find("(conversation cleared)"), std::string::npos) << result.out;
  EXPECT_NE(result.out.find("(system prompt set"), std::string::npos) << result.out;
}

TEST(TextCli, EvalOnTextLinesTracksLlamaCpp) {
  const auto reference = smollm2_reference();
  const auto result = test::run_retort({"eval", "--model", reference["gguf"], "--data",
                                        (test::fixture_dir("smollm2") / "eval.jsonl").string(), "--json"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const auto json = nlohmann::json::parse(result.out);
  EXPECT_EQ(json["tokens"], reference["eval_tokens"]);
  // llama.cpp multiplies Q4_1 weights with 8-bit-quantized activations; we dequantize to
  // float32. Measured gap: 0.75%.
  const double ours = json["loss"], theirs = reference["eval_loss"];
  EXPECT_NEAR(ours, theirs, 0.02 * theirs);
}

TEST(TextCli, BadTemplateNameListsTheNames) {
  const auto reference = smollm2_reference();
  const auto result = test::run_retort(
      {"generate", "--model", reference["gguf"], "--prompt", "hi", "--template", "chatm"});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_NE(result.err.find("chatml"), std::string::npos) << result.err;
}

}  // namespace
}  // namespace retort
