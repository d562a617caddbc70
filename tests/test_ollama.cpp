// export/ollama_template.*: the Modelfile templates Retort writes, rendered by Go's own
// text/template with Ollama's data model (tests/reference/ollama/, built by fixture_ollama.py),
// must print what the formats' real Jinja templates print (transformers), character for
// character, for chats with system prompts, several turns, tools, tool calls and tool results.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <map>

#include "export/ollama_template.h"
#include "io/atomic_file.h"
#include "test_support.h"
#include "test_support_fixtures.h"
#include "tokenizer/chat_template.h"

namespace retort {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::ordered_json;

Json ollama_cases() {
  return Json::parse(read_text_file((test::fixture_dir("ollama") / "cases.json").string()))["cases"];
}

std::string modelfile_with(const std::string& go_template, const std::string& system = "") {
  std::string text = "FROM ./model.gguf\nTEMPLATE \"\"\"" + go_template + "\"\"\"\n";
  return system.empty() ? text : text + "SYSTEM \"\"\"" + system + "\"\"\"\n";
}

// Renders `cases` ({messages, tools, think}) through the Modelfile with the Go oracle.
Json go_render(const std::string& modelfile, const Json& cases) {
  Json request = {{"modelfile", modelfile}, {"cases", Json::array()}};
  for (const Json& c : cases) {
    request["cases"].push_back({{"messages", c["messages"]}, {"tools", c["tools"]}, {"think", c["think"]}});
  }
  const std::string oracle = (test::fixture_dir("ollama") / "ollama_render").string();
  const test::CommandResult result = test::run_program({oracle}, request.dump());
  if (result.exit_code != 0) throw std::runtime_error("ollama_render failed: " + result.err);
  return Json::parse(result.out);
}

// Where two renderings part, with some context, for a readable failure.
std::string first_difference(const std::string& got, const std::string& want) {
  size_t at = 0;
  while (at < got.size() && at < want.size() && got[at] == want[at]) ++at;
  const size_t from = at < 60 ? 0 : at - 60;
  return "first difference at byte " + std::to_string(at) + ":\n  go:    " + Json(got.substr(from, 160)).dump() +
         "\n  jinja: " + Json(want.substr(from, 160)).dump();
}

// The fixture renders Llama 3.2 on 26 Jul 2024; Retort's template holds the day of the export.
std::string expected_text(const Json& c) {
  std::string text = c["expected"];
  if (c["family"] != "llama3.2") return text;
  const std::string today = chat::ChatTemplate::by_name("llama3.2").render(Json::array({{{"role", "user"}, {"content", "?"}}})).text;
  const size_t at = today.find("Today Date: ");
  const std::string fixed = "Today Date: 26 Jul 2024\n";
  const size_t in_text = text.find(fixed);
  if (at == std::string::npos || in_text == std::string::npos) return text;
  return text.replace(in_text, fixed.size(), today.substr(at, today.find('\n', at) + 1 - at));
}

void expect_renders(const Json& rendered, const Json& cases, const std::string& what) {
  ASSERT_EQ(rendered.size(), cases.size());
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::string label = what + " " + cases[i]["template"].get<std::string>() + "/" +
                              cases[i]["conversation"].get<std::string>() + " (" +
                              std::to_string(cases[i]["messages"].size()) + " messages, think " +
                              cases[i]["think"].dump() + ")";
    ASSERT_TRUE(rendered[i].contains("text")) << label << ": " << rendered[i].dump();
    const std::string got = rendered[i]["text"];
    const std::string want = expected_text(cases[i]);
    EXPECT_EQ(got, want) << label << ": " << first_difference(got, want);
  }
}

std::map<std::string, Json> cases_by_family() {
  std::map<std::string, Json> families;
  for (const Json& c : ollama_cases()) {
    auto [it, _] = families.try_emplace(c["family"].get<std::string>(), Json::array());
    it->second.push_back(c);
  }
  return families;
}

// Every format Retort renders, on every conversation its Jinja template accepts; the templates
// are the real ones, which Retort recognises as their formats (as `retort export` does).
TEST(OllamaTemplate, RendersLikeTheRealJinjaTemplatesForEveryFormat) {
  const Json templates =
      Json::parse(read_text_file((test::fixture_dir("ollama") / "cases.json").string()))["templates"];
  for (const Json& entry : templates) {
    EXPECT_EQ(chat::detect_chat_template_name(entry["source"].get<std::string>()).value_or("none"), entry["family"])
        << entry["id"];
  }
  const std::map<std::string, Json> families = cases_by_family();
  for (const std::string& name : chat::chat_template_names()) {
    SCOPED_TRACE(name);
    ASSERT_TRUE(families.contains(name)) << "no oracle cases for chat format " << name;
    const Json& cases = families.at(name);
    const Json rendered = go_render(modelfile_with(ollama_template(chat::ChatTemplate::by_name(name))), cases);
    expect_renders(rendered["renders"], cases, "format");
  }
}

// Ollama puts the Modelfile's SYSTEM in front of a chat that has no system message: rendered so,
// a chat without one prints what the Jinja template prints for it with that system message.
TEST(OllamaTemplate, ModelfileSystemStandsInForAMissingSystemMessage) {
  const std::map<std::string, Json> families = cases_by_family();
  for (const auto& [name, all] : families) {
    SCOPED_TRACE(name);
    Json with_system = Json::array();
    for (const Json& c : all) {
      if (c["messages"][0]["role"] == "system" && !c.contains("jinja_as_given")) with_system.push_back(c);
    }
    ASSERT_FALSE(with_system.empty());
    Json without = with_system;
    for (Json& c : without) c["messages"].erase(c["messages"].begin());
    const std::string system = with_system[0]["messages"][0]["content"];
    const std::string go_template = ollama_template(chat::ChatTemplate::by_name(name));
    expect_renders(go_render(modelfile_with(go_template, system), without)["renders"], with_system, "SYSTEM");
  }
}

// What Ollama reads from the template besides rendering it: a tool format announces the tools
// capability and its tool-call parser waits for the format's own opening text; Qwen3 announces
// thinking between <think> tags; tool-less formats announce neither.
TEST(OllamaTemplate, OllamaFindsEachFormatsToolCallTagAndThinkingTags) {
  const std::map<std::string, std::string> tags = {
      {"llama3.1", "{"}, {"llama3.2", "{"}, {"qwen2.5", "<tool_call>"}, {"qwen3", "<tool_call>"},
      {"mistral-v3", "[TOOL_CALLS] ["}, {"mistral-v3-tekken", "[TOOL_CALLS]["}};
  for (const std::string& name : chat::chat_template_names()) {
    SCOPED_TRACE(name);
    const Json answer = go_render(modelfile_with(ollama_template(chat::ChatTemplate::by_name(name))), Json::array());
    const bool tools = tags.contains(name);
    Json capabilities = tools ? Json::array({"tools"}) : Json::array();  // sorted by name
    if (name == "qwen3") capabilities.insert(capabilities.begin(), "thinking");
    EXPECT_EQ(answer["capabilities"], capabilities);
    if (tools) {
      EXPECT_EQ(answer["tool_tag"], tags.at(name));
    }
    if (name == "qwen3") {
      EXPECT_EQ(answer["thinking_tags"], Json::array({"<think>", "</think>"}));
    }
  }
}

// Where Ollama cannot carry what the Jinja template reads (tool properties in the order given: Ollama
// keeps them in a Go map), the Go rendering equals the Jinja rendering of the data as Ollama holds
// it, and that really differs from the data as given (docs/export.md lists these differences).
TEST(OllamaTemplate, DocumentedDifferencesAreOnlyWhatOllamaCannotHold) {
  Json documented = Json::array();
  for (const Json& c : ollama_cases()) {
    if (c.contains("jinja_as_given")) documented.push_back(c);
  }
  ASSERT_FALSE(documented.empty());
  const std::string go_template = ollama_template(chat::ChatTemplate::by_name("qwen2.5"));
  expect_renders(go_render(modelfile_with(go_template), documented)["renders"], documented, "held");
  for (const Json& c : documented) EXPECT_NE(c["expected"], c["jinja_as_given"]) << c["conversation"];
}

std::string smollm2_gguf() {
  return Json::parse(read_text_file((test::fixture_dir("smollm2") / "smollm2.json").string()))["gguf"];
}

// The business agent as a user trains and exports it for Ollama (its recipe, one step; the GGUF
// export of the trained adapter with Qwen2.5's Jinja template, the tool format the recipe trains
// in, and the shop's system prompt as SYSTEM): the Modelfile's template renders the held-out
// conversations, tools and tool calls included, as the training template does, but for the order
// of tool properties Ollama cannot keep, with or without their system message; it stops at
// <|im_end|> and Ollama's tool-call parser waits for <tool_call>.
TEST(OllamaModelfile, BusinessAgentExportRendersItsHeldOutChatsAsTrained) {
  test::TempDir dir;
  const std::string source_dir = test::env_or_empty("RETORT_SOURCE_DIR");
  const std::string data = source_dir + "/examples/business_agent/";
  const fs::path run = dir.path() / "run";
  const test::CommandResult trained = test::run_retort(
      {"run", source_dir + "/recipes/business_agent_lora.yaml", "model.path=" + smollm2_gguf(),
       "data.train=" + data + "train.jsonl", "data.validation=\"\"", "checkpoint.output_dir=" + run.string(),
       "logging.tensorboard=false", "training.max_steps=1", "training.gradient_accumulation=1",
       "lora.rank=4"});
  ASSERT_EQ(trained.exit_code, 0) << trained.err;
  Json held_out = Json::array();
  for (const Json& c : ollama_cases()) {
    if (c["conversation"].get<std::string>().starts_with("heldout:")) held_out.push_back(c);
  }
  ASSERT_EQ(held_out.size(), 6u);
  const std::string shop_prompt = held_out[0]["messages"][0]["content"];
  const std::string out = (dir.path() / "pinecone-q8_0.gguf").string();
  const test::CommandResult exported = test::run_retort(
      {"export", "--model", smollm2_gguf(), "--adapter", (run / "adapter").string(), "--format", "gguf", "--quant",
       "q8_0", "--chat-template", (test::fixture_dir("ollama") / "qwen2.5.jinja").string(), "--system-prompt",
       shop_prompt, "--out", out});
  ASSERT_EQ(exported.exit_code, 0) << exported.err;
  const std::string modelfile = read_text_file(out + ".Modelfile");
  EXPECT_NE(modelfile.find("PARAMETER stop \"<|im_end|>\"\n"), std::string::npos) << modelfile;
  const Json answer = go_render(modelfile, held_out);
  expect_renders(answer["renders"], held_out, "business agent");
  EXPECT_EQ(answer["tool_tag"], "<tool_call>");
  EXPECT_EQ(answer["capabilities"], Json::array({"tools"}));
  Json without_system = held_out;
  for (Json& c : without_system) {
    ASSERT_EQ(c["messages"][0]["content"], shop_prompt);
    c["messages"].erase(c["messages"].begin());
  }
  expect_renders(go_render(modelfile, without_system)["renders"], held_out, "business agent, SYSTEM");
}

}  // namespace
}  // namespace retort
