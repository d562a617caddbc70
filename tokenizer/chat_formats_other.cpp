// ChatML (plain, Qwen2, Qwen2.5 with tools, SmolLM2), Mistral v1 / v3 / v3-tekken and Gemma
// chat renderings, byte for byte the templates in llama.cpp models/templates
// (Qwen-Qwen2.5-7B-Instruct, mistralai-Mistral-Nemo-Instruct-2407, google-gemma-2-2b-it),
// tests/test-chat-template.cpp (Mistral v1 / v3) and SmolLM2's GGUF; Gemma's system-prompt
// folding follows llama.cpp src/llama-chat.cpp.
#include "tokenizer/chat_render.h"

#include <algorithm>

#include "io/error.h"

namespace retort::chat::detail {
namespace {

constexpr std::string_view kQwen25DefaultSystem = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.";

void reject_tools(const std::string& name, const std::vector<Message>& messages, const ChatRenderOptions& options) {
  if (!options.tools.empty()) reject(name, "this template has no tool format");
  for (const Message& message : messages)
    if (!message.tool_calls.empty()) reject_message(message, "tool_calls", "chat template '" + name + "' has no tool-call format");
}

}  // namespace

void chatml_turn(SegmentBuilder& out, std::string_view role, std::string_view content, int index) {
  const bool trainable = role == "assistant";
  out.special(kImStart, index, role);
  out.text(std::string(role) + "\n", index, role);
  out.text(content, index, role, trainable);
  out.special(kImEnd, index, role, trainable);
  out.text("\n", index, role);
}

std::string qwen_tools_block(const Json& tools) {
  std::string block =
      "# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with "
      "function signatures within <tools></tools> XML tags:\n<tools>";
  for (const Json& tool : tools) block += "\n" + python_json_dumps(tool);
  return block +
         "\n</tools>\n\nFor each function call, return a json object with function name and arguments within "
         "<tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": "
         "<args-json-object>}\n</tool_call>";
}

std::string qwen_tool_call(const Json& call) {
  const Json& function = call["function"];
  return "<tool_call>\n{\"name\": \"" + function["name"].get<std::string>() +
         "\", \"arguments\": " + python_json_dumps(function["arguments"]) + "}\n</tool_call>";
}

void qwen_tool_response(SegmentBuilder& out, const std::vector<Message>& messages, size_t i) {
  const Message& message = messages[i];
  // Consecutive tool results share one user turn.
  if (i == 0 || messages[i - 1].role != "tool") {
    out.special(kImStart, message.index, "tool");
    out.text("user", message.index, "tool");
  }
  out.text("\n<tool_response>\n" + message.content + "\n</tool_response>", message.index, "tool");
  if (i + 1 == messages.size() || messages[i + 1].role != "tool") {
    out.special(kImEnd, message.index, "tool");
    out.text("\n", message.index, "tool");
  }
}

RenderedChat render_chatml(ChatFamily family, const std::vector<Message>& messages, const ChatRenderOptions& options) {
  std::string_view default_system = family == ChatFamily::kQwen2     ? "You are a helpful assistant."
                                    : family == ChatFamily::kSmolLM2 ? "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
                                                                     : "";
  reject_tools(family == ChatFamily::kChatML ? "chatml" : family == ChatFamily::kQwen2 ? "qwen2" : "smollm2", messages,
               options);
  SegmentBuilder out;
  if (!default_system.empty() && messages[0].role != "system") chatml_turn(out, "system", default_system, -1);
  for (const Message& message : messages) chatml_turn(out, message.role, message.content, message.index);
  if (options.add_generation_prompt) {
    out.special(kImStart, -1, "assistant");
    out.text("assistant\n", -1, "assistant");
  }
  return std::move(out).finish();
}

namespace {

void qwen25_system(SegmentBuilder& out, const std::vector<Message>& messages, const ChatRenderOptions& options) {
  const bool has_system = messages[0].role == "system";
  const int index = has_system ? 0 : -1;
  std::string_view system = has_system ? std::string_view(messages[0].content) : kQwen25DefaultSystem;
  if (options.tools.empty()) return chatml_turn(out, "system", system, index);
  out.special(kImStart, index, "system");
  out.text("system\n", index, "system");
  out.text(system, index, "system");
  out.text("\n\n" + qwen_tools_block(options.tools), index, "system");
  out.special(kImEnd, index, "system");
  out.text("\n", index, "system");
}

void qwen25_tool_calls(SegmentBuilder& out, const Message& message) {
  const int index = message.index;
  out.special(kImStart, index, "assistant");
  out.text("assistant", index, "assistant");
  std::string body = message.has_content ? "\n" + message.content : "";
  for (const Json& call : message.tool_calls) {
    body += "\n" + qwen_tool_call(call);
  }
  // The leading "\n" is what the generation prompt "<|im_start|>assistant\n" supplies.
  out.text(body.substr(0, 1), index, "assistant");
  out.text(body.substr(1), index, "assistant", true);
  out.special(kImEnd, index, "assistant", true);
  out.text("\n", index, "assistant");
}

}  // namespace

RenderedChat render_qwen25(const std::vector<Message>& messages, const ChatRenderOptions& options) {
  SegmentBuilder out;
  qwen25_system(out, messages, options);
  for (size_t i = 0; i < messages.size(); ++i) {
    const Message& message = messages[i];
    if (message.role == "system" && i == 0) continue;  // rendered above
    if (message.role == "assistant" && !message.tool_calls.empty()) {
      qwen25_tool_calls(out, message);
    } else if (message.role != "tool") {
      chatml_turn(out, message.role, message.content, message.index);
    } else {
      qwen_tool_response(out, messages, i);
    }
  }
  if (options.add_generation_prompt) {
    out.special(kImStart, -1, "assistant");
    out.text("assistant\n", -1, "assistant");
  }
  return std::move(out).finish();
}

namespace {

// Mistral v3 / v3-tekken tool definitions: hand-built JSON in which string values are
// pasted unescaped, as the template does.
std::string mistral_tool_list(const Json& tools, std::string_view space) {
  std::string text = std::string(space) + "[";
  for (size_t t = 0; t < tools.size(); ++t) {
    if (!tools[t].is_object() || !tools[t].contains("function") || !tools[t]["function"].is_object())
      throw bad_input("a tool definition needs a \"function\" object").key("tools[" + std::to_string(t) + "]");
    text += "{\"type\": \"function\", \"function\": {";
    bool first = true;
    for (auto it = tools[t]["function"].begin(); it != tools[t]["function"].end(); ++it) {
      if (it.key() == "return") continue;
      text += first ? "" : ", ";
      first = false;
      text += it->is_string() ? "\"" + it.key() + "\": \"" + it->get<std::string>() + "\""
                              : "\"" + it.key() + "\": " + python_json_dumps(*it);
    }
    text += "}}";
    text += t + 1 < tools.size() ? ", " : "]";
  }
  return text;
}

void require_mistral_id(const Message& message, const std::optional<std::string>& id, const std::string& field) {
  if (!id || id->size() != 9) reject_message(message, field, "Tool call IDs should be alphanumeric strings with length 9!");
}

void mistral_tool_calls(SegmentBuilder& out, const Message& message, std::string_view space) {
  out.special("[TOOL_CALLS]", message.index, "assistant", true);
  std::string text = std::string(space) + "[";
  for (size_t c = 0; c < message.tool_calls.size(); ++c) {
    const Json& call = message.tool_calls[c];
    std::optional<std::string> id;
    if (call.contains("id")) id = call["id"].get<std::string>();
    require_mistral_id(message, id, "tool_calls[" + std::to_string(c) + "].id");
    std::string function = python_json_dumps(call["function"]);
    function.pop_back();  // the template drops the closing brace to append the id
    text += function + ", \"id\": \"" + *id + "\"}";
    text += c + 1 < message.tool_calls.size() ? ", " : "]";
  }
  out.text(text, message.index, "assistant", true);
  out.special("</s>", message.index, "assistant", true);
}

RenderedChat render_mistral_v1(const std::vector<Message>& messages, const Message* system, size_t first,
                               const ChatRenderOptions& options) {
  reject_tools("mistral-v1", messages, options);
  SegmentBuilder out;
  out.special("<s>", -1, "");
  for (size_t i = first; i < messages.size(); ++i) {
    const Message& message = messages[i];
    if ((message.role == "user") != ((i - first) % 2 == 0))
      reject_message(message, "role",
                     "After the optional system message, conversation roles must alternate user/assistant/user/assistant/...");
    if (message.role == "user") {
      out.text(" [INST] ", message.index, "user");
      if (i == first && system) out.text(system->content + "\n\n", system->index, "system");
      out.text(message.content + " [/INST]", message.index, "user");
    } else if (message.role == "assistant") {
      out.text(" " + message.content, message.index, "assistant", true);
      out.special("</s>", message.index, "assistant", true);
    } else {
      reject_message(message, "role",
                     "Only user and assistant roles are supported, with the exception of an initial optional system message!");
    }
  }
  return std::move(out).finish();
}

}  // namespace

RenderedChat render_mistral(ChatFamily family, const std::vector<Message>& messages, const ChatRenderOptions& options) {
  const Message* system = messages[0].role == "system" ? &messages[0] : nullptr;
  const size_t first = system ? 1 : 0;
  if (family == ChatFamily::kMistralV1) return render_mistral_v1(messages, system, first, options);
  const std::string_view space = family == ChatFamily::kMistralV3 ? " " : "";
  // The alternation check skips tool results and tool-call turns.
  size_t position = 0;
  const Message* last_user = nullptr;
  for (size_t i = first; i < messages.size(); ++i) {
    const Message& message = messages[i];
    if (message.role == "user") last_user = &message;
    if (message.role == "tool" || !message.tool_calls.empty()) continue;
    if ((message.role == "user") != (position++ % 2 == 0))
      reject_message(message, "role",
                     "After the optional system message, conversation roles must alternate user/assistant/user/assistant/...");
  }
  SegmentBuilder out;
  out.special("<s>", -1, "");
  for (size_t i = first; i < messages.size(); ++i) {
    const Message& message = messages[i];
    if (message.role == "user") {
      // The template compares messages by value, so an identical earlier user turn also
      // receives the tool list.
      if (!options.tools.empty() && *message.raw == *last_user->raw) {
        out.special("[AVAILABLE_TOOLS]", message.index, "user");
        out.text(mistral_tool_list(options.tools, space), message.index, "user");
        out.special("[/AVAILABLE_TOOLS]", message.index, "user");
      }
      out.special("[INST]", message.index, "user");
      out.text(space, message.index, "user");
      // The system prompt goes into the last message, and only when that is a user turn.
      if (i + 1 == messages.size() && system) out.text(system->content + "\n\n", system->index, "system");
      out.text(message.content, message.index, "user");
      out.special("[/INST]", message.index, "user");
    } else if (!message.tool_calls.empty()) {
      mistral_tool_calls(out, message, space);
    } else if (message.role == "assistant") {
      out.text(std::string(space) + (space.empty() ? message.content : python_strip(message.content)), message.index,
               "assistant", true);
      out.special("</s>", message.index, "assistant", true);
    } else if (message.role == "tool") {
      require_mistral_id(message, message.tool_call_id, "tool_call_id");
      out.special("[TOOL_RESULTS]", message.index, "tool");
      out.text(std::string(space) + "{\"content\": " + message.content + ", \"call_id\": \"" + *message.tool_call_id +
                   "\"}",
               message.index, "tool");
      out.special("[/TOOL_RESULTS]", message.index, "tool");
    } else {
      reject_message(message, "role",
                     "Only user and assistant roles are supported, with the exception of an initial optional system message!");
    }
  }
  return std::move(out).finish();
}

RenderedChat render_gemma(const std::vector<Message>& messages, const ChatRenderOptions& options, GemmaSystem style) {
  reject_tools(style == GemmaSystem::kAsWritten ? "gemma3" : "gemma", messages, options);
  // Gemma has no system role: the system prompt opens the first user turn, followed by a blank line.
  const Message* system = messages[0].role == "system" ? &messages[0] : nullptr;
  const size_t first = system ? 1 : 0;
  SegmentBuilder out;
  out.special("<bos>", -1, "");
  for (size_t i = first; i < messages.size(); ++i) {
    const Message& message = messages[i];
    if (message.role != "user" && message.role != "assistant")
      reject_message(message, "role", "Gemma supports user and assistant roles after an optional system message");
    if ((message.role == "user") != ((i - first) % 2 == 0))
      reject_message(message, "role", "Conversation roles must alternate user/assistant/user/assistant/...");
    const bool assistant = message.role == "assistant";
    out.special("<start_of_turn>", message.index, message.role);
    out.text(assistant ? "model\n" : "user\n", message.index, message.role);
    if (i == first && system && style == GemmaSystem::kAsWritten) {
      out.text(system->content + "\n\n", system->index, "system");
    } else if (i == first && system && !python_strip(system->content).empty()) {
      // llama.cpp adds the stripped prompt (and its blank line) only when it is not empty.
      out.text(python_strip(system->content) + "\n\n", system->index, "system");
    }
    out.text(python_strip(message.content), message.index, message.role, assistant);
    out.special("<end_of_turn>", message.index, message.role, assistant);
    out.text("\n", message.index, message.role);
  }
  if (options.add_generation_prompt) {
    out.special("<start_of_turn>", -1, "assistant");
    out.text("model\n", -1, "assistant");
  }
  return std::move(out).finish();
}

}  // namespace retort::chat::detail
