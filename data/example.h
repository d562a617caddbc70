// Dataset examples as users write them (one JSON object a line): OpenAI-style chat, ShareGPT,
// Alpaca instructions and plain text, normalised into one Example before tokenization.
#pragma once

#include <string>

#include "tokenizer/chat_template.h"

namespace retort::data {

using Json = chat::Json;

enum class ExampleFormat { kChat, kAlpaca, kText };

// The JSON keys an example's parts are read from (recipe `data.fields.*`).
struct FieldNames {
  std::string messages = "messages";            // chat: OpenAI-style message list
  std::string conversations = "conversations";  // chat: ShareGPT list ({"from", "value"})
  std::string tools = "tools";                  // chat: tool definitions
  std::string text = "text";
  std::string instruction = "instruction";
  std::string input = "input";
  std::string output = "output";
};

// The Stanford Alpaca prompt (with and without an input); `prompt_template` "alpaca" picks it.
extern const char* const kAlpacaPrompt;
extern const char* const kAlpacaPromptNoInput;

struct FormatOptions {
  ExampleFormat format = ExampleFormat::kChat;
  FieldNames fields;
  // Added as the first message of a conversation that has no system message ("" : none).
  std::string system_prompt;
  // Alpaca layout: "alpaca" (the Stanford prompt as plain text), "chat" (instruction and input
  // as the user turn, output as the assistant turn, through the chat template), or a custom
  // prompt with {instruction} and {input} placeholders followed by the output.
  std::string prompt_template = "alpaca";
};

// One parsed example. Chat and Alpaca-as-chat fill `messages`; plain text and Alpaca text
// layouts fill `prompt` (never trained unless training on everything) and `completion`.
struct Example {
  bool is_chat = false;
  Json messages = Json::array();  // validated roles; each may carry "train": bool
  Json tools = Json::array();
  std::string prompt;
  std::string completion;
};

ExampleFormat parse_example_format(const std::string& name);  // "chat" | "alpaca" | "text"

// Reads one example; malformed ones are bad_input keyed by the offending field
// ("messages[2].role", "conversations[0].from", "output"), without a file (the caller adds it).
Example parse_example(const Json& value, const FormatOptions& options);

}  // namespace retort::data
