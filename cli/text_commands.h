// Text-level commands: `retort tokenize` and `retort chat`, plus the text prompt support that
// `retort generate` uses (tokenizer + chat template of a model).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "cli/args.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/chat_tokens.h"
#include "tokenizer/tokenizer.h"

namespace retort::cli {

CommandSpec tokenize_command();
CommandSpec chat_command();

// A model's tokenizer and chat template (the template by --template NAME, else recognised
// from the model's own Jinja source).
struct TextSide {
  std::unique_ptr<Tokenizer> tokenizer;
  std::optional<chat::ChatTemplate> chat_template;  // nullopt when the model has none and none was named
};
TextSide load_text_side(const std::string& model_path, const std::string& template_name, bool need_template);

// Render options for a prompt that ends in the assistant header; --no-think (Qwen3's
// enable_thinking=false: an empty <think> block, so the model answers directly) is bad_input for
// a template without a thinking switch.
chat::ChatRenderOptions generation_prompt_options(const ParsedArgs& args, const TextSide& side);

// Ids that end a turn: the template's stop strings that are single tokens, plus eos.
std::vector<int64_t> stop_token_ids(const TextSide& side);

// --control-tokens literal|parse|skip: how control-token strings a user typed into a message are
// read (default literal, as `retort run` reads them in training data).
chat::ControlTokenPolicy control_token_option(const ParsedArgs& args);
inline const OptionSpec kControlTokensOption = {
    "control-tokens", "literal|parse|skip",
    "control-token strings (\"<|im_end|>\") in messages: as text (default), as control tokens, or refuse"};

// The ids of a conversation the user wrote, rendered by the template. skip: bad_input naming the
// first message that holds a control-token string.
std::vector<TokenId> encode_user_chat(const Tokenizer& tokenizer, const chat::RenderedChat& chat,
                                      chat::ControlTokenPolicy policy);

// Text given whole (--text, --file, generate --raw): read as HF reads it (parse) unless
// --control-tokens is given; skip refuses text that holds a control-token string.
std::vector<TokenId> encode_user_text(const Tokenizer& tokenizer, const std::string& text, bool add_special_tokens,
                                      const ParsedArgs& args);

}  // namespace retort::cli
