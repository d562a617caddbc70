// Chat templates against the real Jinja templates rendered by transformers (and llama.cpp for
// Gemma's system folding): tests/reference/fixture_chat_templates.py writes the cases.
#include <gtest/gtest.h>

#include <fstream>
#include <iostream>
#include <functional>
#include <map>

#include "io/error.h"
#include "tests/test_support.h"
#include "tests/test_support_fixtures.h"
#include "tokenizer/chat_template.h"

namespace retort::chat {
namespace {

Json read_json(const std::filesystem::path& path) {
  std::ifstream in(path);
  return Json::parse(in);  // ordered: key order matters to the renderings
}

std::string first_difference(const std::string& expected, const std::string& actual) {
  size_t pos = 0;
  while (pos < expected.size() && pos < actual.size() && expected[pos] == actual[pos]) ++pos;
  if (pos == expected.size() && pos == actual.size()) return "";
  auto around = [pos](const std::string& s) { return Json(s.substr(pos < 40 ? 0 : pos - 40, 100)).dump(); };
  return "first difference at byte " + std::to_string(pos) + "\n  expected: " + around(expected) +
         "\n  actual:   " + around(actual);
}

ChatRenderOptions options_for(const Json& test_case, const std::string& pinned_date) {
  ChatRenderOptions options;
  options.add_generation_prompt = test_case["add_generation_prompt"].get<bool>();
  options.tools = test_case["tools"];
  const Json& extra = test_case["options"];
  if (extra.contains("tools_in_user_message")) options.tools_in_user_message = extra["tools_in_user_message"];
  if (extra.contains("builtin_tools")) options.builtin_tools = extra["builtin_tools"].get<std::vector<std::string>>();
  if (extra.contains("enable_thinking")) options.enable_thinking = extra["enable_thinking"].get<bool>();
  // Llama 3.2 prints strftime_now's date, which the fixture pinned.
  if (test_case["family"] == "llama3.2") options.date_string = pinned_date;
  return options;
}

// Segments must tile the text exactly and special segments must be whole tokens.
void expect_segments_tile(const RenderedChat& chat, const std::string& label) {
  size_t offset = 0;
  for (const ChatSegment& segment : chat.segments) {
    ASSERT_EQ(segment.begin, offset) << label;
    ASSERT_EQ(chat.text.compare(segment.begin, segment.text.size(), segment.text), 0) << label;
    if (segment.special) {
      EXPECT_TRUE(segment.text.front() == '<' || segment.text.front() == '[') << label;
    }
    offset += segment.text.size();
  }
  EXPECT_EQ(offset, chat.text.size()) << label;
}

TEST(ChatTemplate, RendersLikeTheRealTemplates) {
  const Json fixture = read_json(test::fixture_dir("chat_templates") / "cases.json");
  const std::string pinned_date = fixture["pinned_date"];
  std::map<std::string, std::pair<int, int>> passed_by_template;  // rendered, rejected
  for (const Json& test_case : fixture["cases"]) {
    const std::string label = test_case["template"].get<std::string>() + " / " +
                              test_case["conversation"].get<std::string>() +
                              (test_case["add_generation_prompt"].get<bool>() ? " / generation prompt" : "");
    const ChatTemplate chat_template = ChatTemplate::by_name(test_case["family"].get<std::string>());
    const ChatRenderOptions options = options_for(test_case, pinned_date);
    if (test_case.contains("error")) {
      try {
        chat_template.render(test_case["messages"], options);
        ADD_FAILURE() << label << ": the template rejects this chat (" << test_case["error"] << ") but we rendered it";
      } catch (const Error& error) {
        EXPECT_EQ(error.kind(), ErrorKind::kBadInput) << label;
        ++passed_by_template[test_case["template"]].second;
      }
      continue;
    }
    RenderedChat chat = chat_template.render(test_case["messages"], options);
    const std::string difference = first_difference(test_case["expected"], chat.text);
    EXPECT_EQ(difference, "") << label;
    expect_segments_tile(chat, label);
    if (difference.empty()) ++passed_by_template[test_case["template"]].first;
  }
  for (const auto& [name, counts] : passed_by_template)
    std::printf("  %-13s %3d rendered equal, %2d rejected like the template\n", name.c_str(), counts.first,
                counts.second);
  EXPECT_EQ(passed_by_template.size(), 14u);
}

TEST(ChatTemplate, RecognisesRealTemplates) {
  for (const Json& entry : read_json(test::fixture_dir("chat_templates") / "recognition.json")) {
    const std::string id = entry["id"];
    const std::optional<std::string> name = detect_chat_template_name(entry["source"].get<std::string>());
    if (entry["family"].is_null()) {
      EXPECT_EQ(name, std::nullopt) << id;
      EXPECT_THROW(ChatTemplate::detect(entry["source"].get<std::string>()), Error) << id;
      EXPECT_EQ(ChatTemplate::detect(entry["source"].get<std::string>(), "chatml").name(), "chatml") << id;
    } else {
      EXPECT_EQ(name, entry["family"].get<std::string>()) << id;
      EXPECT_EQ(ChatTemplate::detect(entry["source"].get<std::string>()).name(), entry["family"]) << id;
    }
  }
}

std::string trainable_text(const RenderedChat& chat) {
  std::string text;
  for (auto [begin, end] : trainable_ranges(chat)) text += chat.text.substr(begin, end - begin) + "|";
  return text;
}

const Json kBasicChat = Json::parse(R"([{"role": "system", "content": "Be brief."},
  {"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Hi there"},
  {"role": "user", "content": "Who are you"}, {"role": "assistant", "content": " I am an assistant "}])");

TEST(ChatTemplate, MarksAssistantOutputAndItsEndOfTurnTrainable) {
  EXPECT_EQ(trainable_text(ChatTemplate::by_name("llama3.1").render(kBasicChat)),
            "Hi there<|eot_id|>|I am an assistant<|eot_id|>|");
  EXPECT_EQ(trainable_text(ChatTemplate::by_name("qwen2.5").render(kBasicChat)),
            "Hi there<|im_end|>| I am an assistant <|im_end|>|");
  EXPECT_EQ(trainable_text(ChatTemplate::by_name("gemma").render(kBasicChat)),
            "Hi there<end_of_turn>|I am an assistant<end_of_turn>|");
  EXPECT_EQ(trainable_text(ChatTemplate::by_name("llama2").render(kBasicChat)),
            " Hi there </s>| I am an assistant </s>|");
  EXPECT_EQ(trainable_text(ChatTemplate::by_name("mistral-v3-tekken").render(kBasicChat)),
            "Hi there</s>| I am an assistant </s>|");
}

// Qwen3: an earlier turn loses its reasoning; the last turn's <think> block is trained only when
// train_reasoning says so (it is rendered either way).
TEST(ChatTemplate, Qwen3TrainsReasoningOnlyWhenAsked) {
  const Json chat = Json::parse(R"([{"role": "user", "content": "Q1"},
    {"role": "assistant", "reasoning_content": "r1", "content": "A1"}, {"role": "user", "content": "Q2"},
    {"role": "assistant", "content": "<think>r2</think>A2"}])");
  const ChatTemplate qwen3 = ChatTemplate::by_name("qwen3");
  ChatRenderOptions options;
  const RenderedChat trained = qwen3.render(chat, options);
  EXPECT_EQ(trainable_text(trained), "A1<|im_end|>|<think>\nr2\n</think>\n\nA2<|im_end|>|");
  options.train_reasoning = false;
  const RenderedChat masked = qwen3.render(chat, options);
  EXPECT_EQ(masked.text, trained.text);
  EXPECT_EQ(trainable_text(masked), "A1<|im_end|>|A2<|im_end|>|");
  EXPECT_EQ(masked.text.find("r1"), std::string::npos);
}

TEST(ChatTemplate, AttributesSegmentsToMessagesAndFlagsSpecialTokens) {
  ChatRenderOptions generation;
  generation.add_generation_prompt = true;
  RenderedChat chat = ChatTemplate::by_name("llama3").render(kBasicChat, generation);
  std::vector<std::string> specials;
  for (const ChatSegment& segment : chat.segments) {
    if (segment.special) specials.push_back(segment.text);
    if (segment.text == "Who are you") {
      EXPECT_EQ(segment.message_index, 3);
    }
    if (segment.text == "Be brief.") {
      EXPECT_EQ(segment.role, "system");
    }
  }
  EXPECT_EQ(specials.size(), 1u + 5 * 3 + 2);  // BOS, 3 per turn, generation-prompt header
  EXPECT_EQ(specials.front(), "<|begin_of_text|>");
  EXPECT_EQ(chat.segments.back().message_index, -1);
  EXPECT_EQ(chat.segments.back().role, "assistant");
  // The system prompt folded into Llama 2's first [INST] keeps the system message's index.
  RenderedChat llama2 = ChatTemplate::by_name("llama2").render(kBasicChat);
  EXPECT_EQ(llama2.segments[1].text, "[INST] ");
  EXPECT_EQ(llama2.segments[2].text, "<<SYS>>\nBe brief.\n<</SYS>>\n\n");
  EXPECT_EQ(llama2.segments[2].message_index, 0);
  // [INST] is text in Mistral v1's vocabulary but a control token from v3 on.
  for (const ChatSegment& segment : ChatTemplate::by_name("mistral-v3").render(kBasicChat).segments)
    if (segment.text == "[INST]") {
      EXPECT_TRUE(segment.special);
    }
}

TEST(ChatTemplate, ExposesStopStrings) {
  EXPECT_EQ(ChatTemplate::by_name("llama3.1").stop_strings(),
            (std::vector<std::string>{"<|eot_id|>", "<|eom_id|>", "<|end_of_text|>"}));
  EXPECT_EQ(ChatTemplate::by_name("qwen2.5").stop_strings().front(), "<|im_end|>");
  EXPECT_EQ(ChatTemplate::by_name("gemma").stop_strings().front(), "<end_of_turn>");
  EXPECT_EQ(ChatTemplate::by_name("mistral-v1").stop_strings(), std::vector<std::string>{"</s>"});
  EXPECT_EQ(ChatTemplate::by_name("chatml").bos_token(), "");
}

std::string bad_input_message(const std::function<void()>& action) {
  try {
    action();
  } catch (const Error& error) {
    EXPECT_EQ(error.kind(), ErrorKind::kBadInput);
    return error.what();
  }
  ADD_FAILURE() << "no bad_input thrown";
  return "";
}

TEST(ChatTemplate, RejectsBadInputClearly) {
  std::string unknown = bad_input_message([] { ChatTemplate::by_name("llama-3"); });
  EXPECT_NE(unknown.find("unknown chat template 'llama-3'"), std::string::npos) << unknown;
  for (const std::string& name : chat_template_names()) EXPECT_NE(unknown.find(name), std::string::npos) << unknown;

  std::string role = bad_input_message([] {
    ChatTemplate::by_name("chatml").render(Json::parse(R"([{"role": "user", "content": "a"}, {"role": "asistant", "content": "b"}])"));
  });
  EXPECT_NE(role.find("messages[1].role"), std::string::npos) << role;
  EXPECT_NE(role.find("did you mean 'assistant'"), std::string::npos) << role;

  std::string arguments = bad_input_message([] {
    ChatTemplate::by_name("qwen2.5").render(Json::parse(R"([{"role": "user", "content": "a"},
      {"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": "{\"city\": "}}]}])"));
  });
  EXPECT_NE(arguments.find("messages[1].tool_calls[0].function.arguments"), std::string::npos) << arguments;
  EXPECT_NE(arguments.find("not valid JSON"), std::string::npos) << arguments;

  std::string not_object = bad_input_message([] {
    ChatTemplate::by_name("llama3.1").render(Json::parse(R"([{"role": "user", "content": "a"},
      {"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": "[1, 2]"}}]}])"));
  });
  EXPECT_NE(not_object.find("must be a JSON object"), std::string::npos) << not_object;

  std::string no_tools = bad_input_message([] {
    ChatRenderOptions with_tools;
    with_tools.tools = Json::parse(R"([{"type": "function", "function": {"name": "f"}}])");
    ChatTemplate::by_name("gemma").render(Json::parse(R"([{"role": "user", "content": "a"}])"), with_tools);
  });
  EXPECT_NE(no_tools.find("no tool format"), std::string::npos) << no_tools;

  std::string nemo_id = bad_input_message([] {
    ChatTemplate::by_name("mistral-v3-tekken").render(Json::parse(R"([{"role": "user", "content": "a"},
      {"role": "assistant", "tool_calls": [{"type": "function", "id": "short", "function": {"name": "f", "arguments": {}}}]}])"));
  });
  EXPECT_NE(nemo_id.find("length 9"), std::string::npos) << nemo_id;

  std::string unknown_source = bad_input_message([] { ChatTemplate::detect("{{ messages }} <|user|>"); });
  EXPECT_NE(unknown_source.find("not one Retort renders"), std::string::npos) << unknown_source;
  EXPECT_THROW(ChatTemplate::by_name("chatml").render(Json::array()), Error);
}

TEST(ChatTemplate, LoadsStoredTemplates) {
  const auto dir = test::fixture_dir("chat_templates");
  const Json sources = read_json(dir / "sources.json");
  EXPECT_EQ(load_chat_template_source((dir / "model_dir").string()), sources["qwen25_template"]);
  EXPECT_EQ(load_chat_template_source((dir / "model_dir" / "tokenizer_config.json").string(), "tool_use"),
            sources["llama2_template"]);
  std::string missing = bad_input_message([&] { load_chat_template_source((dir / "model_dir").string(), "rag"); });
  EXPECT_NE(missing.find("default, tool_use"), std::string::npos) << missing;
  EXPECT_EQ(ChatTemplate::detect(load_chat_template_source((dir / "jinja_dir").string())).name(), "gemma");
  const std::string gguf_source = load_chat_template_source(sources["smollm2_gguf"].get<std::string>());
  EXPECT_EQ(gguf_source, sources["smollm2_template"]);
  EXPECT_EQ(ChatTemplate::detect(gguf_source).name(), "smollm2");
}

// A base model (Gemma-3-270M ships no template) is fine-tuned and chatted with in its family's
// format; its exports carry a Jinja template Retort writes for that format, which transformers
// must render exactly as Google's own Gemma 3 template.
TEST(ChatTemplate, Gemma3TemplateWeWriteRendersLikeGooglesTemplate) {
  const auto dir = test::fixture_dir("chat_templates");
  const Json sources = read_json(dir / "sources.json");
  const std::optional<std::string> jinja = ChatTemplate::by_name("gemma3").jinja_source();
  ASSERT_TRUE(jinja.has_value());
  EXPECT_EQ(detect_chat_template_name(*jinja), "gemma3");
  EXPECT_FALSE(ChatTemplate::by_name("llama3").jinja_source().has_value());  // such models ship theirs
  test::TempDir temp;
  const std::string ours = (temp.path() / "gemma3.jinja").string();
  std::ofstream(ours, std::ios::binary) << *jinja;
  const test::CommandResult result = test::run_reference_script(
      "check_chat_template_source.py", {ours, sources["gemma3_template"].get<std::string>(), "<bos>", "<eos>"});
  EXPECT_EQ(result.exit_code, 0) << result.out << result.err;
  std::cout << result.out;
}

}  // namespace
}  // namespace retort::chat
