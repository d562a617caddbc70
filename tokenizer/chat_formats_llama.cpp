// Llama 2 and Llama 3 / 3.1 / 3.2 / 3.3 chat renderings, byte for byte the HF templates of
// meta-llama/Llama-2-7b-chat-hf and Meta-Llama-3-8B-Instruct, and the Jinja files
// meta-llama-Llama-3.{1,2,3}-*.jinja in llama.cpp models/templates.
#include <ctime>

#include "tokenizer/chat_render.h"

#include <algorithm>

#include "io/error.h"

namespace retort::chat::detail {
namespace {

constexpr std::string_view kStartHeader = "<|start_header_id|>";
constexpr std::string_view kEndHeader = "<|end_header_id|>";
constexpr std::string_view kEot = "<|eot_id|>";
constexpr std::string_view kEom = "<|eom_id|>";
constexpr std::string_view kToolsPreambleEnd =
    "Respond in the format {\"name\": function name, \"parameters\": dictionary of argument name and its value}."
    "Do not use variables.\n\n";

void llama3_header(SegmentBuilder& out, std::string_view header_role, int index, std::string_view role) {
  out.special(kStartHeader, index, role);
  out.text(header_role, index, role);
  out.special(kEndHeader, index, role);
  out.text("\n\n", index, role);
}

void llama3_tool_list(SegmentBuilder& out, const Json& tools, int index, std::string_view role) {
  for (const Json& tool : tools) {
    out.text(python_json_dumps(tool, 4), index, role);
    out.text("\n\n", index, role);
  }
}

std::string today_date() {
  std::time_t now = std::time(nullptr);
  std::tm local{};
  localtime_r(&now, &local);
  char buffer[32];
  std::strftime(buffer, sizeof buffer, "%d %b %Y", &local);
  return buffer;
}

// The system turn of 3.1+: environment and tool lines, the knowledge/today dates, tools
// when they go into the system turn, then the system message.
void llama3_system_turn(SegmentBuilder& out, ChatFamily family, const Message* system, const ChatRenderOptions& options) {
  const int index = system ? system->index : -1;
  const bool has_tools = !options.tools.empty();
  const bool has_builtin = !options.builtin_tools.empty();
  llama3_header(out, "system", index, "system");
  if (has_builtin || has_tools) out.text("Environment: ipython\n", index, "system");
  if (has_builtin) {
    std::string listed;
    for (const std::string& name : options.builtin_tools) {
      if (name == "code_interpreter") continue;  // the template rejects it from this line
      listed += (listed.empty() ? "" : ", ") + name;
    }
    out.text("Tools: " + listed + "\n\n", index, "system");
  }
  std::string date = options.date_string ? *options.date_string
                     : family == ChatFamily::kLlama32 ? today_date()
                                                      : "26 Jul 2024";
  out.text("Cutting Knowledge Date: December 2023\nToday Date: " + date + "\n\n", index, "system");
  if (has_tools && !options.tools_in_user_message) {
    out.text("You have access to the following functions. To call a function, please respond with JSON for a "
             "function call.",
             index, "system");
    out.text(kToolsPreambleEnd, index, "system");
    llama3_tool_list(out, options.tools, index, "system");
  }
  if (system) out.text(python_strip(system->content), index, "system");
  out.special(kEot, index, "system");
}

void llama3_tool_call(SegmentBuilder& out, const Message& message, const ChatRenderOptions& options) {
  if (message.tool_calls.size() != 1)
    reject_message(message, "tool_calls", "This model only supports single tool-calls at once!");
  const Json& function = message.tool_calls[0]["function"];
  const std::string name = function["name"].get<std::string>();
  const int index = message.index;
  llama3_header(out, "assistant", index, "assistant");
  const auto& builtin = options.builtin_tools;
  if (std::find(builtin.begin(), builtin.end(), name) != builtin.end()) {
    out.special("<|python_tag|>", index, "assistant", true);
    std::string call = name + ".call(";
    bool first = true;
    for (auto it = function["arguments"].begin(); it != function["arguments"].end(); ++it) {
      if (!it->is_string())
        reject_message(message, "tool_calls[0].function.arguments." + it.key(),
                       "built-in tool arguments must be strings (the template concatenates them)");
      call += (first ? "" : ", ") + it.key() + "=\"" + it->get<std::string>() + "\"";
      first = false;
    }
    out.text(call + ")", index, "assistant", true);
  } else {
    out.text("{\"name\": \"" + name + "\", \"parameters\": " + python_json_dumps(function["arguments"]) + "}", index,
             "assistant", true);
  }
  // With built-in tools the model is in "ipython mode" and ends tool calls with <|eom_id|>.
  out.special(builtin.empty() ? kEot : kEom, index, "assistant", true);
}

void llama3_message(SegmentBuilder& out, ChatFamily family, const Message& message, const ChatRenderOptions& options) {
  const int index = message.index;
  const bool tool_aware = family != ChatFamily::kLlama3;
  if (tool_aware && !message.tool_calls.empty()) return llama3_tool_call(out, message, options);
  if (tool_aware && message.role == "tool") {
    // A string is iterable in Jinja, so the template's `is iterable` test sends every tool
    // result through tojson: string results are printed as quoted JSON strings.
    llama3_header(out, "ipython", index, "tool");
    out.text(python_json_dumps(Json(message.content)), index, "tool");
    out.special(kEot, index, "tool");
    return;
  }
  if (!message.tool_calls.empty())
    reject_message(message, "tool_calls", "chat template 'llama3' (Llama 3.0) has no tool-call format");
  const bool trainable = message.role == "assistant";
  llama3_header(out, message.role, index, message.role);
  out.text(python_strip(message.content), index, message.role, trainable);
  out.special(kEot, index, message.role, trainable);
}

}  // namespace

RenderedChat render_llama3(ChatFamily family, const std::vector<Message>& messages, const ChatRenderOptions& options) {
  SegmentBuilder out;
  out.special("<|begin_of_text|>", -1, "");
  size_t next = 0;
  if (family == ChatFamily::kLlama3) {
    if (!options.tools.empty() || !options.builtin_tools.empty())
      reject("llama3", "Llama 3.0 has no tool format; use llama3.1 or later");
  } else {
    if (family == ChatFamily::kLlama32 && !options.builtin_tools.empty())
      reject("llama3.2", "the Llama 3.2 template has no built-in tools");
    const Message* system = messages[0].role == "system" ? &messages[0] : nullptr;
    next = system ? 1 : 0;
    llama3_system_turn(out, family, system, options);
    if (options.tools_in_user_message && !options.tools.empty()) {
      if (next >= messages.size())
        reject("llama3.1", "Cannot put tools in the first user message when there's no first user message!");
      // The template takes the first message after the system one, whatever its role.
      const Message& first = messages[next++];
      llama3_header(out, "user", first.index, "user");
      out.text("Given the following functions, please respond with a JSON for a function call with its proper "
               "arguments that best answers the given prompt.\n\n",
               first.index, "user");
      out.text(kToolsPreambleEnd, first.index, "user");
      llama3_tool_list(out, options.tools, first.index, "user");
      out.text(python_strip(first.content), first.index, "user");
      out.special(kEot, first.index, "user");
    }
  }
  for (; next < messages.size(); ++next) llama3_message(out, family, messages[next], options);
  if (options.add_generation_prompt) llama3_header(out, "assistant", -1, "assistant");
  return std::move(out).finish();
}

RenderedChat render_llama2(const std::vector<Message>& messages, const ChatRenderOptions& options) {
  if (!options.tools.empty()) reject("llama2", "Llama 2 has no tool format");
  const bool has_system = messages[0].role == "system";
  const size_t first = has_system ? 1 : 0;
  SegmentBuilder out;
  for (size_t i = first; i < messages.size(); ++i) {
    const Message& message = messages[i];
    const size_t position = i - first;
    if (!message.tool_calls.empty()) reject_message(message, "tool_calls", "Llama 2 has no tool-call format");
    if (message.role != "user" && message.role != "assistant")
      reject_message(message, "role", "Llama 2 supports user and assistant roles after an optional system message");
    if ((message.role == "user") != (position % 2 == 0))
      reject_message(message, "role", "Conversation roles must alternate user/assistant/user/assistant/...");
    if (message.role == "assistant") {
      out.text(" " + python_strip(message.content) + " ", message.index, "assistant", true);
      out.special("</s>", message.index, "assistant", true);
      continue;
    }
    out.special("<s>", message.index, "user");
    out.text("[INST] ", message.index, "user");
    // The system prompt is folded into the first user turn and stripped together with it.
    std::string prefix = position == 0 && has_system ? "<<SYS>>\n" + messages[0].content + "\n<</SYS>>\n\n" : "";
    std::string content = python_strip(prefix + message.content);
    if (!prefix.empty() && content.starts_with(prefix)) {
      out.text(prefix, messages[0].index, "system");
      content.erase(0, prefix.size());
    }
    out.text(content, message.index, "user");
    out.text(" [/INST]", message.index, "user");
  }
  return std::move(out).finish();
}

}  // namespace retort::chat::detail
