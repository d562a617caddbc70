// Chat templates as exact built-in renderings (no Jinja engine): Llama 2, Llama 3 / 3.1 / 3.2,
// ChatML (Qwen2, Qwen2.5 with tools, Qwen3 with tools and thinking, SmolLM2), Mistral v1 / v3 / v3-tekken, Gemma. References:
// the models' own Jinja templates and llama.cpp src/llama-chat.cpp (docs/formats.md §5).
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace retort::chat {

// Insertion-ordered JSON: templates print tool schemas and arguments in the order given, as
// Python's json.dumps does, so key order must survive.
using Json = nlohmann::ordered_json;

// One piece of rendered text. Consecutive pieces tile `RenderedChat::text` exactly.
struct ChatSegment {
  size_t begin = 0;        // byte offset into RenderedChat::text
  std::string text;
  int message_index = -1;  // index into the messages given; -1 for template scaffolding
                           // (BOS, a default system prompt, the generation prompt)
  std::string role;        // the role of that message ("system", "user", "assistant",
                           // "tool"); for scaffolding the role it stands in for or ""
  bool special = false;    // a special/control token of the vocabulary (one whole token)
  bool trainable = false;  // assistant output: its content, tool calls and end-of-turn token
};

struct RenderedChat {
  std::string text;
  std::vector<ChatSegment> segments;
};

struct ChatRenderOptions {
  bool add_generation_prompt = false;
  // OpenAI-style tool definitions ([{"type": "function", "function": {...}}]); empty: none.
  Json tools = Json::array();
  // Llama 3.1+: the "Today Date" line. Unset: what the template does without it (3.1 / 3.3
  // print "26 Jul 2024", 3.2 prints today's date).
  std::optional<std::string> date_string;
  // Llama 3.1+: tool definitions go into the first user message (the template's default) or,
  // when false, into the system turn.
  bool tools_in_user_message = true;
  // Llama 3.1 / 3.3: built-in tool names (e.g. "brave_search"); calls to them are rendered
  // as `<|python_tag|>name.call(k="v")` and assistant tool-call turns end in `<|eom_id|>`.
  std::vector<std::string> builtin_tools;
  // Qwen3: `enable_thinking` as the template sees it (unset: undefined). False ends the
  // generation prompt with an empty <think></think> block, so the model answers directly.
  std::optional<bool> enable_thinking;
  // Qwen3: whether the <think> block of an assistant turn is trained (it is rendered either way).
  bool train_reasoning = true;
};

enum class ChatFamily {
  kLlama2,
  kLlama3,    // Llama 3.0: no tools, no date lines
  kLlama31,   // 3.1 and 3.3 (identical templates)
  kLlama32,   // 3.2: the date comes from strftime_now, no built-in tools
  kChatML,    // plain ChatML, no default system prompt
  kQwen2,     // ChatML with "You are a helpful assistant."
  kQwen25,    // ChatML with Qwen2.5's default system prompt and its tool formats
  kQwen3,     // ChatML with Qwen3's tools, tool calls and <think> reasoning blocks
  kSmolLM2,   // ChatML with SmolLM2's default system prompt
  kMistralV1,
  kMistralV3,
  kMistralV3Tekken,  // Mistral Nemo
  kGemma,
  kGemma3,
};

// A chat format: picked by name or recognised from a model's Jinja source, then rendered.
class ChatTemplate {
 public:
  // Names: see chat_template_names(). An unknown name is bad_input listing the valid ones.
  static ChatTemplate by_name(std::string_view name);
  // Recognises a Jinja chat template by distinctive substrings (as llama.cpp's
  // llm_chat_detect_template does, but only for formats rendered exactly here). An
  // unrecognised one is bad_input, unless `fallback_name` names the format to use instead.
  static ChatTemplate detect(std::string_view jinja_source,
                             std::optional<std::string_view> fallback_name = std::nullopt);

  ChatFamily family() const { return family_; }
  const std::string& name() const { return name_; }
  // The end-of-turn strings that stop generation (special tokens), most specific first.
  std::vector<std::string> stop_strings() const;
  // The BOS text the rendering starts with ("" for ChatML formats, which have none).
  std::string bos_token() const;
  // A Jinja template (written for Retort) that renders this format, stored in exports of a model
  // that has no template of its own but is chatted with in its family's format; nullopt for
  // formats whose models always ship their template.
  std::optional<std::string> jinja_source() const;

  // `messages`: [{"role": "system"|"user"|"assistant"|"tool", "content": "...",
  //   "tool_calls": [{"type": "function", "id": "...", "function": {"name": "...",
  //   "arguments": {...} or "json string"}}], "tool_call_id": "..."}]. Arguments given as a
  // JSON string are parsed first, so they render like the equivalent object (as llama.cpp
  // does; a Jinja template would print the string quoted). An empty or null tool_calls is
  // treated as absent. What the real template would reject (via raise_exception) is
  // bad_input here, with the key of the offending message.
  RenderedChat render(const Json& messages, const ChatRenderOptions& options = {}) const;

 private:
  ChatTemplate(ChatFamily family, std::string name) : family_(family), name_(std::move(name)) {}
  ChatFamily family_;
  std::string name_;
};

// "chatml", "gemma", "llama2", "llama3", "llama3.1", "llama3.2", "mistral-v1", ...
std::vector<std::string> chat_template_names();

// The family's name for a Jinja source, or nullopt when it is not one rendered here.
std::optional<std::string> detect_chat_template_name(std::string_view jinja_source);

// The Jinja chat template stored with a model: a model directory (tokenizer_config.json's
// `chat_template`, a string or a list of {name, template} from which `variant` is taken;
// else chat_template.jinja), a tokenizer_config.json, a .jinja file or a .gguf
// (`tokenizer.chat_template`). Throws bad_input naming the file when there is none.
std::string load_chat_template_source(const std::string& path, std::string_view variant = "default");

// Byte ranges of trainable text ([begin, end)), merged where adjacent.
std::vector<std::pair<size_t, size_t>> trainable_ranges(const RenderedChat& chat);

}  // namespace retort::chat
