// The chat-format registry: names, recognition of a model's Jinja template by distinctive
// substrings (after llama.cpp src/llama-chat.cpp llm_chat_detect_template), where templates
// are stored (docs/formats.md §5.6), and dispatch to the renderers in chat_formats_*.cpp.
#include "tokenizer/chat_template.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "io/error.h"
#include "io/gguf.h"
#include "io/text.h"
#include "tokenizer/chat_render.h"

namespace retort::chat {
namespace {

struct FamilyInfo {
  ChatFamily family;
  const char* name;
  const char* bos;
  std::vector<std::string> stops;
};

const std::vector<FamilyInfo>& families() {
  static const std::vector<FamilyInfo> kFamilies = {
      {ChatFamily::kLlama2, "llama2", "<s>", {"</s>"}},
      {ChatFamily::kLlama3, "llama3", "<|begin_of_text|>", {"<|eot_id|>", "<|end_of_text|>"}},
      {ChatFamily::kLlama31, "llama3.1", "<|begin_of_text|>", {"<|eot_id|>", "<|eom_id|>", "<|end_of_text|>"}},
      {ChatFamily::kLlama32, "llama3.2", "<|begin_of_text|>", {"<|eot_id|>", "<|eom_id|>", "<|end_of_text|>"}},
      {ChatFamily::kChatML, "chatml", "", {"<|im_end|>"}},
      {ChatFamily::kQwen2, "qwen2", "", {"<|im_end|>", "<|endoftext|>"}},
      {ChatFamily::kQwen25, "qwen2.5", "", {"<|im_end|>", "<|endoftext|>"}},
      {ChatFamily::kQwen3, "qwen3", "", {"<|im_end|>", "<|endoftext|>"}},
      {ChatFamily::kSmolLM2, "smollm2", "", {"<|im_end|>", "<|endoftext|>"}},
      {ChatFamily::kMistralV1, "mistral-v1", "<s>", {"</s>"}},
      {ChatFamily::kMistralV3, "mistral-v3", "<s>", {"</s>"}},
      {ChatFamily::kMistralV3Tekken, "mistral-v3-tekken", "<s>", {"</s>"}},
      {ChatFamily::kGemma, "gemma", "<bos>", {"<end_of_turn>", "<eos>"}},
      {ChatFamily::kGemma3, "gemma3", "<bos>", {"<end_of_turn>", "<eos>"}},
  };
  return kFamilies;
}

const FamilyInfo& info_for(ChatFamily family) {
  for (const FamilyInfo& info : families())
    if (info.family == family) return info;
  throw internal_error("chat family without a registry entry");
}

bool contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

// The ChatML variants differ only in their default system prompt and tool support.
std::optional<ChatFamily> detect_chatml(std::string_view t) {
  // Phi-4 (<|im_sep|>) and SmolVLM (<end_of_utterance>) reuse <|im_start|> but are not ChatML.
  if (contains(t, "<|im_sep|>") || contains(t, "<end_of_utterance>")) return std::nullopt;
  if (contains(t, "You are Qwen, created by Alibaba Cloud") && contains(t, "<tool_call>")) return ChatFamily::kQwen25;
  // Qwen3 (hybrid thinking, as the 0.6B-32B checkpoints ship it); the 2507 Instruct and
  // Thinking variants render differently and are not recognised.
  if (contains(t, "ns.last_query_index") && contains(t, "reasoning_content") &&
      contains(t, "enable_thinking is defined and enable_thinking is false"))
    return ChatFamily::kQwen3;
  if (contains(t, "You are a helpful AI assistant named SmolLM")) return ChatFamily::kSmolLM2;
  if (contains(t, "<|im_start|>system\\nYou are a helpful assistant.<|im_end|>") ||
      contains(t, "<|im_start|>system\nYou are a helpful assistant.<|im_end|>"))
    return ChatFamily::kQwen2;
  // Anything else with tools or a default system prompt would render differently.
  if (contains(t, "tools") || contains(t, "loop.first and messages[0]['role'] != 'system'")) return std::nullopt;
  return ChatFamily::kChatML;
}

std::optional<ChatFamily> detect_inst(std::string_view t) {
  if (contains(t, "[SYSTEM_PROMPT]")) return std::nullopt;  // Mistral v7: not rendered here
  if (contains(t, "' [INST] ' + system_message") || contains(t, "[AVAILABLE_TOOLS]")) {
    if (contains(t, " [INST]")) return ChatFamily::kMistralV1;
    if (contains(t, "\"[INST]\"")) return ChatFamily::kMistralV3Tekken;
    return ChatFamily::kMistralV3;
  }
  // Only the official Llama 2 chat template (BOS before every [INST], stripped content);
  // llama.cpp's other llama2 variants place BOS or spaces differently.
  if (contains(t, "<<SYS>>") && contains(t, "bos_token + '[INST] ' + content.strip()")) return ChatFamily::kLlama2;
  return std::nullopt;
}

std::optional<ChatFamily> detect_family(std::string_view t) {
  if (contains(t, "<|im_start|>")) return detect_chatml(t);
  if (t.starts_with("mistral") || contains(t, "[INST]")) return detect_inst(t);
  // Gemma 3's template folds the system prompt, as written, into the first user turn.
  if (contains(t, "<start_of_turn>") && contains(t, "first_user_prefix")) return ChatFamily::kGemma3;
  if (contains(t, "<start_of_turn>")) return ChatFamily::kGemma;
  if (contains(t, "<|start_header_id|>") && contains(t, "<|end_header_id|>")) {
    if (!contains(t, "Cutting Knowledge Date")) return ChatFamily::kLlama3;
    // 3.2 takes the date from strftime_now and has no built-in tools; 3.1 and 3.3 agree.
    return contains(t, "builtin_tools") ? ChatFamily::kLlama31 : ChatFamily::kLlama32;
  }
  return std::nullopt;
}

std::string read_text_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw bad_input("cannot read the file").file(path.string());
  std::ostringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

std::string template_from_tokenizer_config(const std::filesystem::path& path, std::string_view variant) {
  Json config = Json::parse(read_text_file(path), nullptr, /*allow_exceptions=*/false);
  if (config.is_discarded() || !config.is_object()) throw bad_input("not a JSON object").file(path.string());
  if (!config.contains("chat_template") || config["chat_template"].is_null())
    throw bad_input("no chat_template in this file").file(path.string()).key("chat_template");
  const Json& value = config["chat_template"];
  if (value.is_string()) return value.get<std::string>();
  if (!value.is_array()) throw bad_input("chat_template must be a string or a list").file(path.string()).key("chat_template");
  std::vector<std::string> names;
  for (const Json& entry : value) {
    if (!entry.is_object() || !entry.contains("name") || !entry.contains("template") || !entry["name"].is_string() ||
        !entry["template"].is_string())
      throw bad_input("chat_template entries must be {name, template}").file(path.string()).key("chat_template");
    if (entry["name"] == variant) return entry["template"].get<std::string>();
    names.push_back(entry["name"].get<std::string>());
  }
  throw bad_input("no chat template named '" + std::string(variant) + "'; it has: " + join(names, ", "))
      .file(path.string())
      .key("chat_template");
}

}  // namespace

std::vector<std::string> chat_template_names() {
  std::vector<std::string> names;
  for (const FamilyInfo& info : families()) names.emplace_back(info.name);
  return names;
}

std::optional<std::string> detect_chat_template_name(std::string_view jinja_source) {
  auto family = detect_family(jinja_source);
  if (!family) return std::nullopt;
  return info_for(*family).name;
}

ChatTemplate ChatTemplate::by_name(std::string_view name) {
  for (const FamilyInfo& info : families())
    if (name == info.name) return ChatTemplate(info.family, info.name);
  const std::vector<std::string> names = chat_template_names();
  std::string hint = nearest_match(name, names);
  throw bad_input("unknown chat template '" + std::string(name) + "'" +
                  (hint.empty() ? "" : " (did you mean '" + hint + "'?)") + "; valid names: " + join(names, ", "))
      .key("chat_template");
}

ChatTemplate ChatTemplate::detect(std::string_view jinja_source, std::optional<std::string_view> fallback_name) {
  if (auto family = detect_family(jinja_source)) return ChatTemplate(*family, info_for(*family).name);
  if (fallback_name) return by_name(*fallback_name);
  std::string opening(jinja_source.substr(0, 80));
  throw bad_input("this chat template is not one Retort renders (it starts: \"" + opening +
                  "\"); name one of: " + join(chat_template_names(), ", "))
      .key("chat_template");
}

std::vector<std::string> ChatTemplate::stop_strings() const { return info_for(family_).stops; }

std::string ChatTemplate::bos_token() const { return info_for(family_).bos; }

// Gemma 3's format: the system prompt as given plus a blank line opens the first user turn, the
// assistant speaks as "model", content is trimmed, roles alternate. (Recognised as gemma3 by
// detect_family: <start_of_turn> with first_user_prefix.)
constexpr const char* kGemma3Jinja = R"JINJA({{- bos_token -}}
{%- set first_user_prefix = '' -%}
{%- set turns = messages -%}
{%- if messages and messages[0]['role'] == 'system' -%}
{%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}
{%- set turns = messages[1:] -%}
{%- endif -%}
{%- for message in turns -%}
{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}
{{- raise_exception('Gemma 3 conversations alternate user and assistant turns after an optional system message') -}}
{%- endif -%}
{{- '<start_of_turn>' + ('model' if message['role'] == 'assistant' else message['role']) + '\n' -}}
{%- if loop.first -%}{{- first_user_prefix -}}{%- endif -%}
{{- message['content'] | trim -}}
{{- '<end_of_turn>\n' -}}
{%- endfor -%}
{%- if add_generation_prompt -%}{{- '<start_of_turn>model\n' -}}{%- endif -%}
)JINJA";

std::optional<std::string> ChatTemplate::jinja_source() const {
  if (family_ == ChatFamily::kGemma3) return std::string(kGemma3Jinja);
  return std::nullopt;
}

RenderedChat ChatTemplate::render(const Json& messages, const ChatRenderOptions& options) const {
  if (!options.tools.is_array()) throw bad_input("tools must be a JSON array").key("tools");
  std::vector<detail::Message> checked = detail::validate_messages(messages);
  switch (family_) {
    case ChatFamily::kLlama2: return detail::render_llama2(checked, options);
    case ChatFamily::kLlama3:
    case ChatFamily::kLlama31:
    case ChatFamily::kLlama32: return detail::render_llama3(family_, checked, options);
    case ChatFamily::kChatML:
    case ChatFamily::kQwen2:
    case ChatFamily::kSmolLM2: return detail::render_chatml(family_, checked, options);
    case ChatFamily::kQwen25: return detail::render_qwen25(checked, options);
    case ChatFamily::kQwen3: return detail::render_qwen3(checked, options);
    case ChatFamily::kMistralV1:
    case ChatFamily::kMistralV3:
    case ChatFamily::kMistralV3Tekken: return detail::render_mistral(family_, checked, options);
    case ChatFamily::kGemma: return detail::render_gemma(checked, options, detail::GemmaSystem::kStrippedWhenGiven);
    case ChatFamily::kGemma3: return detail::render_gemma(checked, options, detail::GemmaSystem::kAsWritten);
  }
  throw internal_error("unhandled chat family");
}

std::string load_chat_template_source(const std::string& path_text, std::string_view variant) {
  namespace fs = std::filesystem;
  const fs::path path(path_text);
  if (fs::is_directory(path)) {
    const fs::path config = path / "tokenizer_config.json";
    if (fs::exists(config)) {
      Json parsed = Json::parse(read_text_file(config), nullptr, false);
      if (!parsed.is_discarded() && parsed.is_object() && parsed.contains("chat_template") &&
          !parsed["chat_template"].is_null())
        return template_from_tokenizer_config(config, variant);
    }
    if (fs::exists(path / "chat_template.jinja")) return read_text_file(path / "chat_template.jinja");
    throw bad_input("no chat template: neither tokenizer_config.json's chat_template nor chat_template.jinja")
        .file(path_text);
  }
  if (path.extension() == ".gguf") {
    auto gguf = GgufFile::open(path_text);
    auto source = gguf->find_string("tokenizer.chat_template");
    if (!source) throw bad_input("no chat template in this GGUF").file(path_text).key("tokenizer.chat_template");
    return *source;
  }
  if (path.extension() == ".json") return template_from_tokenizer_config(path, variant);
  return read_text_file(path);
}

std::vector<std::pair<size_t, size_t>> trainable_ranges(const RenderedChat& chat) {
  std::vector<std::pair<size_t, size_t>> ranges;
  for (const ChatSegment& segment : chat.segments) {
    if (!segment.trainable) continue;
    const size_t end = segment.begin + segment.text.size();
    if (!ranges.empty() && ranges.back().second == segment.begin)
      ranges.back().second = end;
    else
      ranges.emplace_back(segment.begin, end);
  }
  return ranges;
}

}  // namespace retort::chat
