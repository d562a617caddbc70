#include "data/example.h"

#include <algorithm>
#include <array>
#include <utility>

#include "io/error.h"
#include "io/text.h"

namespace retort::data {

const char* const kAlpacaPrompt =
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request.\n\n### Instruction:\n{instruction}\n\n"
    "### Input:\n{input}\n\n### Response:\n";
const char* const kAlpacaPromptNoInput =
    "Below is an instruction that describes a task. Write a response that appropriately completes the "
    "request.\n\n### Instruction:\n{instruction}\n\n### Response:\n";

namespace {

const std::vector<std::string> kChatRoles = {"system", "user", "assistant", "tool"};
// ShareGPT speaker names and the chat role each stands for.
const std::vector<std::pair<std::string, std::string>> kShareGptRoles = {
    {"system", "system"}, {"human", "user"},           {"user", "user"},          {"gpt", "assistant"},
    {"assistant", "assistant"}, {"tool", "tool"},      {"observation", "tool"},   {"function_response", "tool"}};

std::string element_key(const std::string& list, size_t index, const std::string& field = "") {
  return list + "[" + std::to_string(index) + "]" + (field.empty() ? "" : "." + field);
}

std::string unknown_value(const std::string& what, const std::string& value, const std::vector<std::string>& valid) {
  const std::string hint = nearest_match(value, valid);
  return "unknown " + what + " '" + value + "'" + (hint.empty() ? "" : " (did you mean '" + hint + "'?)") +
         "; expected one of: " + join(valid, ", ");
}

const Json& required_field(const Json& object, const std::string& name, const std::string& format) {
  if (!object.contains(name)) {
    std::vector<std::string> present;
    for (const auto& item : object.items()) present.push_back(item.key());
    throw bad_input("a " + format + " example needs the field \"" + name + "\" (it has: " +
                    (present.empty() ? "no fields" : join(present, ", ")) + ")")
        .key(name);
  }
  return object[name];
}

std::string string_field(const Json& object, const std::string& name, const std::string& format, bool optional) {
  if (optional && (!object.contains(name) || object[name].is_null())) return "";
  const Json& value = required_field(object, name, format);
  if (!value.is_string()) throw bad_input("must be a string, not " + std::string(value.type_name())).key(name);
  return value.get<std::string>();
}

// OpenAI content: a string, null, or a list of {"type": "text", "text": ...} parts (joined).
Json normalise_content(const Json& content, const std::string& key) {
  if (content.is_null() || content.is_string()) return content;
  if (!content.is_array()) {
    throw bad_input("content must be a string, null or a list of text parts, not " + std::string(content.type_name()))
        .key(key);
  }
  std::string joined;
  for (size_t i = 0; i < content.size(); ++i) {
    const Json& part = content[i];
    const std::string part_key = key + "[" + std::to_string(i) + "]";
    if (!part.is_object() || part.value("type", "") != "text" || !part.contains("text") || !part["text"].is_string()) {
      throw bad_input("only text content parts ({\"type\": \"text\", \"text\": ...}) are supported").key(part_key);
    }
    joined += part["text"].get<std::string>();
  }
  return joined;
}

Json parse_messages(const Json& list, const std::string& field) {
  if (!list.is_array()) throw bad_input("must be a list of messages, not " + std::string(list.type_name())).key(field);
  if (list.empty()) throw bad_input("the conversation has no messages").key(field);
  Json messages = Json::array();
  for (size_t i = 0; i < list.size(); ++i) {
    const Json& raw = list[i];
    if (!raw.is_object()) throw bad_input("a message must be a JSON object").key(element_key(field, i));
    if (!raw.contains("role") || !raw["role"].is_string())
      throw bad_input("a message needs a string \"role\"").key(element_key(field, i, "role"));
    const std::string role = raw["role"].get<std::string>();
    if (std::find(kChatRoles.begin(), kChatRoles.end(), role) == kChatRoles.end())
      throw bad_input(unknown_value("role", role, kChatRoles)).key(element_key(field, i, "role"));
    Json message = raw;
    if (raw.contains("content")) message["content"] = normalise_content(raw["content"], element_key(field, i, "content"));
    if (raw.contains("train") && !raw["train"].is_boolean())
      throw bad_input("\"train\" must be true or false").key(element_key(field, i, "train"));
    messages.push_back(std::move(message));
  }
  return messages;
}

Json parse_sharegpt(const Json& list, const std::string& field) {
  if (!list.is_array()) throw bad_input("must be a list of turns, not " + std::string(list.type_name())).key(field);
  if (list.empty()) throw bad_input("the conversation has no turns").key(field);
  std::vector<std::string> speakers;
  for (const auto& [from, role] : kShareGptRoles) speakers.push_back(from);
  Json messages = Json::array();
  for (size_t i = 0; i < list.size(); ++i) {
    const Json& raw = list[i];
    if (!raw.is_object()) throw bad_input("a turn must be a JSON object").key(element_key(field, i));
    if (!raw.contains("from") || !raw["from"].is_string())
      throw bad_input("a turn needs a string \"from\"").key(element_key(field, i, "from"));
    if (!raw.contains("value") || !raw["value"].is_string())
      throw bad_input("a turn needs a string \"value\"").key(element_key(field, i, "value"));
    const std::string from = raw["from"].get<std::string>();
    auto it = std::find_if(kShareGptRoles.begin(), kShareGptRoles.end(), [&](const auto& p) { return p.first == from; });
    if (it == kShareGptRoles.end()) throw bad_input(unknown_value("speaker", from, speakers)).key(element_key(field, i, "from"));
    Json message = {{"role", it->second}, {"content", raw["value"]}};
    if (raw.contains("train")) {
      if (!raw["train"].is_boolean()) throw bad_input("\"train\" must be true or false").key(element_key(field, i, "train"));
      message["train"] = raw["train"];
    }
    messages.push_back(std::move(message));
  }
  return messages;
}

void add_system_prompt(Json& messages, const std::string& system_prompt) {
  if (system_prompt.empty() || messages.empty() || messages[0].value("role", "") == "system") return;
  messages.insert(messages.begin(), Json{{"role", "system"}, {"content", system_prompt}});
}

std::string substitute(std::string text, const std::string& placeholder, const std::string& value) {
  for (size_t at = text.find(placeholder); at != std::string::npos; at = text.find(placeholder, at + value.size())) {
    text.replace(at, placeholder.size(), value);
  }
  return text;
}

Example parse_chat(const Json& value, const FormatOptions& options) {
  const FieldNames& f = options.fields;
  Example example;
  example.is_chat = true;
  if (value.contains(f.messages)) {
    example.messages = parse_messages(value[f.messages], f.messages);
  } else if (value.contains(f.conversations)) {
    example.messages = parse_sharegpt(value[f.conversations], f.conversations);
  } else {
    required_field(value, f.messages, "chat");  // throws, listing the fields present
  }
  if (value.contains(f.tools) && !value[f.tools].is_null()) {
    if (!value[f.tools].is_array()) throw bad_input("tools must be a list of tool definitions").key(f.tools);
    example.tools = value[f.tools];
  }
  add_system_prompt(example.messages, options.system_prompt);
  return example;
}

Example parse_alpaca(const Json& value, const FormatOptions& options) {
  const FieldNames& f = options.fields;
  const std::string instruction = string_field(value, f.instruction, "alpaca", false);
  const std::string input = string_field(value, f.input, "alpaca", true);
  const std::string output = string_field(value, f.output, "alpaca", false);
  Example example;
  if (options.prompt_template == "chat") {
    example.is_chat = true;
    example.messages.push_back({{"role", "user"}, {"content", input.empty() ? instruction : instruction + "\n\n" + input}});
    example.messages.push_back({{"role", "assistant"}, {"content", output}});
    add_system_prompt(example.messages, options.system_prompt);
    return example;
  }
  std::string layout = options.prompt_template;
  if (layout == "alpaca") layout = input.empty() ? kAlpacaPromptNoInput : kAlpacaPrompt;
  example.prompt = substitute(substitute(layout, "{instruction}", instruction), "{input}", input);
  example.completion = output;
  return example;
}

}  // namespace

ExampleFormat parse_example_format(const std::string& name) {
  if (name == "chat") return ExampleFormat::kChat;
  if (name == "alpaca") return ExampleFormat::kAlpaca;
  if (name == "text") return ExampleFormat::kText;
  throw bad_input(unknown_value("data format", name, {"chat", "alpaca", "text"})).key("format");
}

Example parse_example(const Json& value, const FormatOptions& options) {
  if (!value.is_object()) throw bad_input("an example must be a JSON object, not " + std::string(value.type_name()));
  switch (options.format) {
    case ExampleFormat::kChat:
      return parse_chat(value, options);
    case ExampleFormat::kAlpaca:
      return parse_alpaca(value, options);
    case ExampleFormat::kText: {
      Example example;
      example.completion = string_field(value, options.fields.text, "text", false);
      return example;
    }
  }
  throw internal_error("unknown example format");
}

}  // namespace retort::data
