#include "tokenizer/chat_tokens.h"

#include "io/error.h"
#include "tokenizer/unicode.h"

namespace retort::chat {

ControlTokenPolicy parse_control_token_policy(const std::string& name, const std::string& key) {
  if (name == "parse") return ControlTokenPolicy::kParse;
  if (name == "literal") return ControlTokenPolicy::kLiteral;
  if (name == "skip") return ControlTokenPolicy::kSkip;
  throw bad_input("unknown value '" + name + "'; valid: parse, literal, skip").key(key);
}

const char* control_token_policy_name(ControlTokenPolicy policy) {
  switch (policy) {
    case ControlTokenPolicy::kParse: return "parse";
    case ControlTokenPolicy::kLiteral: return "literal";
    case ControlTokenPolicy::kSkip: return "skip";
  }
  return "parse";
}

std::vector<TokenId> encode_rendered(const Tokenizer& tokenizer, const RenderedChat& chat, ControlTokens mode) {
  if (mode == ControlTokens::kParse) return tokenizer.encode(chat.text, false);
  std::string text;
  text.reserve(chat.text.size());
  std::vector<std::pair<size_t, size_t>> places;
  for (const ChatSegment& segment : chat.segments) {
    const size_t begin = text.size();
    text += segment.special ? segment.text : tok::utf8_lossy(segment.text);
    if (segment.special) places.emplace_back(begin, text.size());
  }
  return tokenizer.encode(text, false, ControlTokenFilter{ControlTokens::kLiteral, places});
}

std::vector<ControlStringHit> control_strings_in_messages(const Tokenizer& tokenizer, const RenderedChat& chat) {
  std::vector<ControlStringHit> hits;
  // Runs of non-special segments are searched whole: a string may span a message's text and
  // the scaffolding text next to it.
  size_t run = 0;
  while (run < chat.segments.size()) {
    if (chat.segments[run].special) {
      ++run;
      continue;
    }
    size_t last = run;
    while (last + 1 < chat.segments.size() && !chat.segments[last + 1].special) ++last;
    const size_t begin = chat.segments[run].begin;
    const size_t end = chat.segments[last].begin + chat.segments[last].text.size();
    for (const auto& [from, to] : tokenizer.find_control_strings(std::string_view(chat.text).substr(begin, end - begin))) {
      // The hit belongs to the segment holding its first byte.
      size_t owner = run;
      while (owner < last && chat.segments[owner + 1].begin <= begin + from) ++owner;
      hits.push_back({chat.segments[owner].message_index, chat.segments[owner].role, begin + from, begin + to});
    }
    run = last + 1;
  }
  return hits;
}

}  // namespace retort::chat
