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

// --no-think is Qwen3's enable_thinking=false: an empty <think> block ends the prompt. A template
// without that switch refuses the flag instead of ignoring it.
TEST(TextCli, NoThinkEndsTheQwen3PromptWithAnEmptyThinkBlock) {
  const auto reference = smollm2_reference();
  test::TempDir temp;
  const std::string chat = (temp.path() / "chat.json").string();
  write_file_atomic(chat, R"([{"role": "user", "content": "Hi"}])");
  const std::vector<std::string> tokenize = {"tokenize", "--model", reference["gguf"], "--chat", chat,
                                             "--add-generation-prompt", "--json", "--template", "qwen3"};
  auto run = [&](std::vector<std::string> args, std::vector<std::string> extra) {
    args.insert(args.end(), extra.begin(), extra.end());
    return test::run_retort(args);
  };
  const auto thinking = run(tokenize, {});
  const auto direct = run(tokenize, {"--no-think"});
  ASSERT_EQ(thinking.exit_code, 0) << thinking.err;
  ASSERT_EQ(direct.exit_code, 0) << direct.err;
  EXPECT_EQ(nlohmann::json::parse(direct.out)["text"].get<std::string>(),
            nlohmann::json::parse(thinking.out)["text"].get<std::string>() + "<think>\n\n</think>\n\n");
  const auto generated = test::run_retort({"generate", "--model", reference["gguf"], "--prompt", "Hi", "--template",
                                           "qwen3", "--no-think", "--max-new-tokens", "1"});
  EXPECT_EQ(generated.exit_code, 0) << generated.err;
  const auto refused = test::run_retort({"generate", "--model", reference["gguf"], "--prompt", "Hi", "--no-think"});
  EXPECT_EQ(refused.exit_code, 2);
  EXPECT_NE(refused.err.find("chat template 'smollm2' has no thinking switch"), std::string::npos) << refused.err;
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

// What a user types is read as text by default (--control-tokens literal): a typed "<|im_end|>"
// stays the user's words; parse reads it as HF does; skip refuses it, naming the message.
TEST(TextCli, ControlTokenStringsAUserTypesAreReadAsTheFlagSays) {
  const auto reference = smollm2_reference();
  test::TempDir temp;
  const std::string chat = (temp.path() / "chat.json").string();
  write_file_atomic(chat, R"([{"role": "user", "content": "Why do I see <|im_end|> here?"},
                              {"role": "assistant", "content": "It is a marker."}])");
  auto im_ends = [](const nlohmann::json& json, const std::string& role) {
    int count = 0;
    for (size_t i = 0; i < json["ids"].size(); ++i) {
      count += json["pieces"][i] == "<|im_end|>" && (role.empty() || json["roles"][i] == role);
    }
    return count;
  };
  auto run = [&](const std::vector<std::string>& extra) {
    std::vector<std::string> args = {"tokenize", "--model", reference["gguf"], "--chat", chat, "--json"};
    args.insert(args.end(), extra.begin(), extra.end());
    return test::run_retort(args);
  };
  const auto literal = run({});
  ASSERT_EQ(literal.exit_code, 0) << literal.err;
  const auto literal_json = nlohmann::json::parse(literal.out);
  EXPECT_EQ(im_ends(literal_json, ""), 3) << "one end-of-turn token per turn (the template adds a system turn)";
  EXPECT_EQ(im_ends(literal_json, "user"), 1);
  EXPECT_EQ(literal_json["ids"], nlohmann::json::parse(run({"--control-tokens", "literal"}).out)["ids"]);
  const auto parsed = run({"--control-tokens", "parse"});
  ASSERT_EQ(parsed.exit_code, 0) << parsed.err;
  EXPECT_EQ(im_ends(nlohmann::json::parse(parsed.out), "user"), 2) << "HF's reading: an end of turn inside the message";
  EXPECT_EQ(im_ends(nlohmann::json::parse(parsed.out), ""), 4);
  const auto refused = run({"--control-tokens", "skip"});
  EXPECT_EQ(refused.exit_code, 2);
  EXPECT_NE(refused.err.find("messages[0]"), std::string::npos) << refused.err;
  EXPECT_NE(refused.err.find("<|im_end|>"), std::string::npos) << refused.err;
  const auto bad = run({"--control-tokens", "maybe"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("literal, skip"), std::string::npos) << bad.err;
  // generate --prompt and chat take the same flag.
  const auto generate = test::run_retort({"generate", "--model", reference["gguf"], "--prompt", "Say <|im_end|>",
                                          "--control-tokens", "skip", "--max-new-tokens", "2"});
  EXPECT_EQ(generate.exit_code, 2);
  EXPECT_NE(generate.err.find("messages[0]"), std::string::npos) << generate.err;
  const auto chatted = test::run_retort({"chat", "--model", reference["gguf"], "--max-new-tokens", "4", "--control-tokens", "skip"},
                                        "Say <|im_end|> please\n/exit\n");
  EXPECT_EQ(chatted.exit_code, 0) << chatted.err;
  EXPECT_NE(chatted.out.find("(not sent: the message holds a control-token string"), std::string::npos) << chatted.out;
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
