// Examples -> token ids and labels: the chat template's trainable segments become labels through
// each token's byte span in the rendered text (a token is trained when it overlaps trained
// text, as transformers' assistant masks do), and the length policy is applied.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "data/example.h"
#include "tokenizer/chat_tokens.h"
#include "tokenizer/tokenizer.h"

namespace retort::data {

inline constexpr TokenId kIgnoreLabel = -100;

enum class TrainOn {
  kAssistant,      // every assistant turn, with its end-of-turn token (the default)
  kLastAssistant,  // only the last assistant turn
  kAll,            // every token (train_on_prompt)
};
enum class LengthPolicy {
  kDrop,           // an example longer than max_seq_len is dropped (and counted)
  kTruncateTurns,  // whole turns are removed from the start (the system prompt stays)
  kSplit,          // text only: cut into consecutive max_seq_len pieces
};

TrainOn parse_train_on(const std::string& name);          // assistant | last_assistant | all
LengthPolicy parse_length_policy(const std::string& name);  // drop | truncate_turns | split

struct EncodeOptions {
  // Template options (Llama 3.x date line, tool placement). Llama 3.2 prints today's date when
  // none is given: the encoder fixes it once, so an example encodes the same all run long.
  chat::ChatRenderOptions render;
  int64_t max_seq_len = 2048;
  LengthPolicy length_policy = LengthPolicy::kDrop;
  TrainOn train_on = TrainOn::kAssistant;
  // Control-token strings inside chat messages ("<|im_end|>" typed by a customer): read as text
  // (literal, the default), as control tokens (parse, HF's behaviour) or the example dropped (skip).
  // Text and Alpaca-text documents are tokenized as HF does (parse) whatever this says.
  chat::ControlTokenPolicy control_tokens = chat::ControlTokenPolicy::kLiteral;
};

struct TokenizedSequence {
  std::vector<TokenId> ids;
  std::vector<TokenId> labels;  // ids where trained, kIgnoreLabel elsewhere (aligned with ids)
  int64_t trained_tokens() const;
};

enum class EncodeStatus {
  kKept,
  kTruncated,
  kDropped,         // longer than max_seq_len under the drop policy
  kControlSkipped,  // its messages hold a control-token string and control_tokens is skip
};

struct EncodedExample {
  EncodeStatus status = EncodeStatus::kKept;
  std::vector<TokenizedSequence> sequences;  // empty when dropped; several when split
  int64_t original_tokens = 0;               // before truncation or splitting
  int64_t control_strings = 0;               // control-token strings in its messages' text
};

class ExampleEncoder {
 public:
  // `chat_template` is needed for chat examples (and Alpaca in the chat layout).
  ExampleEncoder(const Tokenizer& tokenizer, const chat::ChatTemplate* chat_template, EncodeOptions options);

  // Bad examples (no trained token, a message the template rejects) are bad_input keyed by field.
  EncodedExample encode(const Example& example) const;

  const EncodeOptions& options() const { return options_; }
  // A chat example rendered as encode() renders it (its tools included).
  chat::RenderedChat render(const Example& example) const;

 private:
  // `control_strings`, when given, receives the number of control-token strings in the messages.
  TokenizedSequence encode_chat(const Json& messages, const Json& tools, int64_t* control_strings = nullptr) const;
  TokenizedSequence encode_text(const Example& example) const;
  chat::RenderedChat render_messages(const Json& messages, const Json& tools) const;
  EncodedExample truncate_turns(const Example& example, int64_t original_tokens, int64_t control_strings) const;

  const Tokenizer& tokenizer_;
  const chat::ChatTemplate* chat_template_;
  EncodeOptions options_;
};

}  // namespace retort::data
