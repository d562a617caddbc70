// Helpers of the chat renderers: segments, Python-compatible json.dumps / str.strip (what
// transformers' Jinja environment uses: chat_template_utils.py `tojson`, the `trim` filter),
// and message validation.
#include "tokenizer/chat_render.h"

#include <algorithm>

#include "io/error.h"

#include <cstdint>

#include "io/error.h"
#include "io/text.h"

namespace retort::chat::detail {

void SegmentBuilder::text(std::string_view piece, int message_index, std::string_view role, bool trainable) {
  if (piece.empty()) return;
  if (!chat_.segments.empty()) {
    ChatSegment& last = chat_.segments.back();
    if (!last.special && last.message_index == message_index && last.role == role && last.trainable == trainable) {
      last.text += piece;
      chat_.text += piece;
      return;
    }
  }
  chat_.segments.push_back({chat_.text.size(), std::string(piece), message_index, std::string(role), false, trainable});
  chat_.text += piece;
}

void SegmentBuilder::special(std::string_view token, int message_index, std::string_view role, bool trainable) {
  chat_.segments.push_back({chat_.text.size(), std::string(token), message_index, std::string(role), true, trainable});
  chat_.text += token;
}

RenderedChat SegmentBuilder::finish() && { return std::move(chat_); }

namespace {

void dump_into(const Json& value, int indent, int depth, std::string& out) {
  const bool pretty = indent >= 0;
  auto newline = [&](int level) {
    out += '\n';
    out.append(static_cast<size_t>(indent * level), ' ');
  };
  if (value.is_object() || value.is_array()) {
    const bool object = value.is_object();
    out += object ? '{' : '[';
    if (value.empty()) {
      out += object ? '}' : ']';
      return;
    }
    bool first = true;
    for (auto it = value.begin(); it != value.end(); ++it) {
      if (!first) out += pretty ? "," : ", ";
      first = false;
      if (pretty) newline(depth + 1);
      if (object) {
        out += Json(it.key()).dump(-1, ' ', false);
        out += ": ";
      }
      dump_into(*it, indent, depth + 1, out);
    }
    if (pretty) newline(depth);
    out += object ? '}' : ']';
    return;
  }
  if (value.is_number_float()) {
    // Python prints integral floats as "1.0"; nlohmann agrees. Non-finite values would be
    // "NaN"/"Infinity" in Python but cannot come from parsed JSON.
    out += value.dump();
    return;
  }
  // Strings: both escape only '"', '\\' and control characters (\uXXXX in lowercase hex)
  // when ensure_ascii is off.
  out += value.dump(-1, ' ', false);
}

// Decodes the UTF-8 code point at text[pos]; returns its length (1 for an invalid byte).
size_t decode_utf8(std::string_view text, size_t pos, uint32_t& code_point) {
  const auto byte = static_cast<unsigned char>(text[pos]);
  size_t length = byte < 0x80 ? 1 : (byte >> 5) == 0x6 ? 2 : (byte >> 4) == 0xE ? 3 : (byte >> 3) == 0x1E ? 4 : 0;
  if (length == 0 || pos + length > text.size()) {
    code_point = 0xFFFD;
    return 1;
  }
  code_point = length == 1 ? byte : byte & (0x7F >> length);
  for (size_t i = 1; i < length; ++i) code_point = (code_point << 6) | (static_cast<unsigned char>(text[pos + i]) & 0x3F);
  return length;
}

// Python's str.isspace(): Unicode White_Space plus the separators \x1c-\x1f.
bool is_python_space(uint32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

}  // namespace

std::string python_json_dumps(const Json& value, int indent) {
  std::string out;
  dump_into(value, indent, 0, out);
  return out;
}

std::string python_strip(std::string_view text) {
  size_t begin = 0;
  while (begin < text.size()) {
    uint32_t c = 0;
    size_t length = decode_utf8(text, begin, c);
    if (!is_python_space(c)) break;
    begin += length;
  }
  // Scan forward to find where the trailing run of whitespace starts (UTF-8 cannot be
  // decoded backwards safely when it may be invalid).
  size_t end = begin;
  for (size_t pos = begin; pos < text.size();) {
    uint32_t c = 0;
    size_t length = decode_utf8(text, pos, c);
    pos += length;
    if (!is_python_space(c)) end = pos;
  }
  return std::string(text.substr(begin, end - begin));
}

void reject_message(const Message& message, const std::string& field, const std::string& why) {
  std::string key = "messages[" + std::to_string(message.index) + "]";
  if (!field.empty()) key += "." + field;
  throw bad_input(why).key(key);
}

void reject(const std::string& template_name, const std::string& why) {
  throw bad_input("chat template '" + template_name + "': " + why);
}

namespace {

const std::vector<std::string> kRoles = {"system", "user", "assistant", "tool"};

Json parse_tool_call(const Message& message, const Json& call, size_t call_index) {
  const std::string where = "tool_calls[" + std::to_string(call_index) + "]";
  if (!call.is_object() || !call.contains("function") || !call["function"].is_object())
    reject_message(message, where, "a tool call must be an object with a \"function\" object");
  const Json& function = call["function"];
  if (!function.contains("name") || !function["name"].is_string())
    reject_message(message, where + ".function.name", "a tool call needs a string \"name\"");
  Json normalised = call;
  Json arguments = function.contains("arguments") ? function["arguments"] : Json::object();
  if (arguments.is_string()) {
    const std::string text = arguments.get<std::string>();
    arguments = Json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (arguments.is_discarded())
      reject_message(message, where + ".function.arguments", "arguments are not valid JSON: " + text);
  }
  if (!arguments.is_object())
    reject_message(message, where + ".function.arguments", "arguments must be a JSON object (or a string holding one)");
  normalised["function"]["arguments"] = std::move(arguments);
  if (call.contains("id") && !call["id"].is_string())
    reject_message(message, where + ".id", "a tool call id must be a string");
  return normalised;
}

}  // namespace

std::vector<Message> validate_messages(const Json& messages) {
  if (!messages.is_array()) throw bad_input("messages must be a JSON array").key("messages");
  if (messages.empty()) throw bad_input("a chat needs at least one message").key("messages");
  std::vector<Message> result;
  for (size_t i = 0; i < messages.size(); ++i) {
    const Json& raw = messages[i];
    Message message;
    message.index = static_cast<int>(i);
    message.raw = &raw;
    if (!raw.is_object()) reject_message(message, "", "a message must be a JSON object");
    if (!raw.contains("role") || !raw["role"].is_string()) reject_message(message, "role", "a message needs a string \"role\"");
    message.role = raw["role"].get<std::string>();
    if (std::find(kRoles.begin(), kRoles.end(), message.role) == kRoles.end()) {
      std::string hint = nearest_match(message.role, kRoles);
      reject_message(message, "role",
                     "unknown role '" + message.role + "'" + (hint.empty() ? "" : " (did you mean '" + hint + "'?)") +
                         "; roles: " + join(kRoles, ", "));
    }
    if (raw.contains("content") && !raw["content"].is_null()) {
      if (!raw["content"].is_string())
        reject_message(message, "content", "content must be a string (content parts are not supported)");
      message.content = raw["content"].get<std::string>();
      message.has_content = !message.content.empty();
    }
    if (raw.contains("tool_calls") && !raw["tool_calls"].is_null()) {
      if (!raw["tool_calls"].is_array()) reject_message(message, "tool_calls", "tool_calls must be an array");
      if (message.role != "assistant" && !raw["tool_calls"].empty())
        reject_message(message, "tool_calls", "only assistant messages carry tool_calls");
      for (size_t c = 0; c < raw["tool_calls"].size(); ++c)
        message.tool_calls.push_back(parse_tool_call(message, raw["tool_calls"][c], c));
    }
    if (raw.contains("tool_call_id") && !raw["tool_call_id"].is_null()) {
      if (!raw["tool_call_id"].is_string()) reject_message(message, "tool_call_id", "tool_call_id must be a string");
      message.tool_call_id = raw["tool_call_id"].get<std::string>();
    }
    // The first of these present is the message's reasoning, as transformers' apply_chat_template
    // aliases them (chat_template_utils._alias_reasoning_fields).
    for (const char* field : {"reasoning_content", "thinking", "reasoning"}) {
      if (!raw.contains(field) || raw[field].is_null()) continue;
      if (!raw[field].is_string()) reject_message(message, field, std::string(field) + " must be a string");
      message.reasoning = raw[field].get<std::string>();
      break;
    }
    result.push_back(std::move(message));
  }
  return result;
}

}  // namespace retort::chat::detail
