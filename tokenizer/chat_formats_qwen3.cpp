// Qwen3's chat template, byte for byte llama.cpp models/templates/Qwen-Qwen3-0.6B.jinja (the
// hybrid-thinking template the Qwen3 0.6B-32B checkpoints ship): ChatML; tools listed in the
// system turn; tool calls as <tool_call> JSON; an assistant turn's reasoning (its
// reasoning_content, or the text before "</think>" in its content) rendered in a <think> block
// only for turns after the last real user query, and an empty block on a final assistant turn
// without reasoning. Earlier turns lose their reasoning, as the template drops it.
#include "tokenizer/chat_render.h"

#include "io/error.h"

namespace retort::chat::detail {
namespace {

constexpr std::string_view kThinkOpen = "<think>";
constexpr std::string_view kThinkClose = "</think>";

// Python's str.lstrip('\n'), rstrip('\n') and strip('\n').
std::string lstrip_newlines(std::string_view text) {
  const size_t first = text.find_first_not_of('\n');
  return first == std::string_view::npos ? "" : std::string(text.substr(first));
}
std::string rstrip_newlines(std::string_view text) {
  const size_t last = text.find_last_not_of('\n');
  return last == std::string_view::npos ? "" : std::string(text.substr(0, last + 1));
}
std::string strip_newlines(std::string_view text) { return lstrip_newlines(rstrip_newlines(text)); }

bool is_tool_response(const Message& message) {
  const std::string& c = message.content;
  return c.starts_with("<tool_response>") && c.ends_with("</tool_response>");
}

// The last user message that is a real query (not tool results passed back as a user turn);
// the last message when there is none.
size_t last_query_index(const std::vector<Message>& messages) {
  for (size_t i = messages.size(); i-- > 0;) {
    if (messages[i].role == "user" && !is_tool_response(messages[i])) return i;
  }
  return messages.size() - 1;
}

struct AssistantText {
  std::string content, reasoning;
};

// reasoning_content when given; else content split at "</think>": the answer after the last
// one, the reasoning between the last "<think>" and the first "</think>".
AssistantText split_reasoning(const Message& message) {
  if (message.reasoning) return {message.content, *message.reasoning};
  const size_t last_close = message.content.rfind(kThinkClose);
  if (last_close == std::string::npos) return {message.content, ""};
  const std::string before = rstrip_newlines(std::string_view(message.content).substr(0, message.content.find(kThinkClose)));
  const size_t open = before.rfind(kThinkOpen);
  const std::string reasoning = open == std::string::npos ? before : before.substr(open + kThinkOpen.size());
  return {lstrip_newlines(std::string_view(message.content).substr(last_close + kThinkClose.size())),
          lstrip_newlines(reasoning)};
}

void assistant_turn(SegmentBuilder& out, const Message& message, bool with_think_block, const ChatRenderOptions& options) {
  const int index = message.index;
  const AssistantText text = split_reasoning(message);
  out.special(kImStart, index, "assistant");
  out.text("assistant\n", index, "assistant");
  if (with_think_block) {
    const std::string block =
        std::string(kThinkOpen) + "\n" + strip_newlines(text.reasoning) + "\n" + std::string(kThinkClose) + "\n\n";
    out.text(block, index, "assistant", options.train_reasoning);
    out.text(lstrip_newlines(text.content), index, "assistant", true);
  } else {
    out.text(text.content, index, "assistant", true);
  }
  for (size_t c = 0; c < message.tool_calls.size(); ++c) {
    const bool newline = c > 0 || !text.content.empty();
    out.text((newline ? "\n" : "") + qwen_tool_call(message.tool_calls[c]), index, "assistant", true);
  }
  out.special(kImEnd, index, "assistant", true);
  out.text("\n", index, "assistant");
}

void system_turn(SegmentBuilder& out, const std::vector<Message>& messages, const ChatRenderOptions& options) {
  const bool has_system = messages[0].role == "system";
  if (options.tools.empty()) {
    if (has_system) chatml_turn(out, "system", messages[0].content, 0);
    return;
  }
  const int index = has_system ? 0 : -1;
  out.special(kImStart, index, "system");
  out.text("system\n", index, "system");
  if (has_system) out.text(messages[0].content + "\n\n", index, "system");
  out.text(qwen_tools_block(options.tools), index, "system");
  out.special(kImEnd, index, "system");
  out.text("\n", index, "system");
}

}  // namespace

RenderedChat render_qwen3(const std::vector<Message>& messages, const ChatRenderOptions& options) {
  SegmentBuilder out;
  system_turn(out, messages, options);
  const size_t last_query = last_query_index(messages);
  for (size_t i = 0; i < messages.size(); ++i) {
    const Message& message = messages[i];
    if (message.role == "user" || (message.role == "system" && i > 0)) {
      chatml_turn(out, message.role, message.content, message.index);
    } else if (message.role == "assistant") {
      const bool after_query = i > last_query;
      const bool last = i + 1 == messages.size();
      assistant_turn(out, message, after_query && (last || !split_reasoning(message).reasoning.empty()), options);
    } else if (message.role == "tool") {
      qwen_tool_response(out, messages, i);
    }
  }
  if (options.add_generation_prompt) {
    out.special(kImStart, -1, "assistant");
    out.text("assistant\n", -1, "assistant");
    if (options.enable_thinking == false) out.text("<think>\n\n</think>\n\n", -1, "assistant");
  }
  return std::move(out).finish();
}

}  // namespace retort::chat::detail
