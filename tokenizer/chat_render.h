// Internal helpers shared by the chat-format renderers (chat_formats_*.cpp): a segment
// builder, Python-compatible json.dumps and str.strip, and checked access to messages.
#pragma once

#include <string>
#include <string_view>

#include "tokenizer/chat_template.h"

namespace retort::chat::detail {

// Appends segments; adjacent plain-text pieces with the same attribution are merged.
class SegmentBuilder {
 public:
  void text(std::string_view piece, int message_index, std::string_view role, bool trainable = false);
  void special(std::string_view token, int message_index, std::string_view role, bool trainable = false);
  RenderedChat finish() &&;

 private:
  RenderedChat chat_;
};

// Python's json.dumps(value, ensure_ascii=False, indent=indent) as transformers' `tojson`
// filter calls it: ", " and ": " separators without indent, insertion order kept.
std::string python_json_dumps(const Json& value, int indent = -1);

// Python's str.strip() (Jinja's `trim` filter and `.strip()`): removes Unicode whitespace.
std::string python_strip(std::string_view text);

// A message that passed validate_messages(): role, content ("" when null or absent), and
// tool calls with arguments as parsed JSON.
struct Message {
  int index = 0;
  std::string role;
  std::string content;
  bool has_content = false;  // content was a non-empty string (Jinja truthiness)
  Json tool_calls = Json::array();  // [{"type", "id"?, "function": {"name", "arguments"}}]
  std::optional<std::string> tool_call_id;
  std::optional<std::string> reasoning;  // reasoning_content (or thinking, reasoning) when given
  const Json* raw = nullptr;  // the message as given (for equality tests some templates make)
};

std::vector<Message> validate_messages(const Json& messages);

// bad_input keyed "messages[i]" (or "messages[i].<field>").
[[noreturn]] void reject_message(const Message& message, const std::string& field, const std::string& why);
[[noreturn]] void reject(const std::string& template_name, const std::string& why);

// ChatML pieces shared by the ChatML renderers (chat_formats_other.cpp, chat_formats_qwen3.cpp).
inline constexpr std::string_view kImStart = "<|im_start|>";
inline constexpr std::string_view kImEnd = "<|im_end|>";
// <|im_start|>role\ncontent<|im_end|>\n; an assistant's content and end token are trainable.
void chatml_turn(SegmentBuilder& out, std::string_view role, std::string_view content, int index);
// Qwen's tool list for the system turn, "# Tools ... </tool_call>" (Qwen2.5 and Qwen3 agree).
std::string qwen_tools_block(const Json& tools);
// One call: <tool_call>\n{"name": "...", "arguments": {...}}\n</tool_call>.
std::string qwen_tool_call(const Json& call);
// messages[i], a tool result; consecutive results share one user turn of <tool_response> blocks.
void qwen_tool_response(SegmentBuilder& out, const std::vector<Message>& messages, size_t i);

// Renderers, one per format family.
RenderedChat render_llama2(const std::vector<Message>& messages, const ChatRenderOptions& options);
RenderedChat render_llama3(ChatFamily family, const std::vector<Message>& messages,
                           const ChatRenderOptions& options);
RenderedChat render_chatml(ChatFamily family, const std::vector<Message>& messages,
                           const ChatRenderOptions& options);
RenderedChat render_qwen25(const std::vector<Message>& messages, const ChatRenderOptions& options);
RenderedChat render_qwen3(const std::vector<Message>& messages, const ChatRenderOptions& options);
RenderedChat render_mistral(ChatFamily family, const std::vector<Message>& messages,
                            const ChatRenderOptions& options);
// How a Gemma template puts the system prompt into the first user turn (Gemma has no system role):
// stripped and only when not empty (llama.cpp's built-in Gemma format, used for Gemma 2, whose own
// template refuses a system message), or as written followed by a blank line (Gemma 3's template).
enum class GemmaSystem { kStrippedWhenGiven, kAsWritten };
RenderedChat render_gemma(const std::vector<Message>& messages, const ChatRenderOptions& options, GemmaSystem system);

}  // namespace retort::chat::detail
