// A rendered chat as token ids, with a choice of how control-token strings inside the messages
// are read. The template's own control tokens (its special segments: "<|im_start|>", "[INST]"
// in Mistral v3, "<|eot_id|>") are always control tokens; a control-token string anywhere else
// came from the messages (or tool definitions) and is read as ControlTokens says.
#pragma once

#include <string>
#include <vector>

#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace retort::chat {

// How a recipe or a command treats control-token strings in message text: kParse reads them as
// control tokens (HF's apply_chat_template + encode), kLiteral as text (llama.cpp's
// parse_special=false for the messages), kSkip as kLiteral but the example is dropped.
enum class ControlTokenPolicy { kParse, kLiteral, kSkip };
// "parse" | "literal" | "skip"; bad_input naming `key` otherwise.
ControlTokenPolicy parse_control_token_policy(const std::string& name, const std::string& key);
const char* control_token_policy_name(ControlTokenPolicy policy);

// Ids of `chat.text` (no BOS added: the template writes its own). Invalid UTF-8 in a segment is
// replaced by U+FFFD first, per segment, so the places of the template's tokens stay exact.
std::vector<TokenId> encode_rendered(const Tokenizer& tokenizer, const RenderedChat& chat, ControlTokens mode);

// A control-token string inside the text of a message (or of the tool definitions: message -1).
struct ControlStringHit {
  int message_index = -1;
  std::string role;
  size_t begin = 0, end = 0;  // byte range in RenderedChat::text
};
// Every control-token string outside the template's own control tokens, in text order.
std::vector<ControlStringHit> control_strings_in_messages(const Tokenizer& tokenizer, const RenderedChat& chat);

}  // namespace retort::chat
