// Text-level commands: `retort tokenize` and `retort chat`, plus the text prompt support that
// `retort generate` uses (tokenizer + chat template of a model).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "cli/args.h"
#include "tokenizer/chat_template.h"
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

// Ids that end a turn: the template's stop strings that are single tokens, plus eos.
std::vector<int64_t> stop_token_ids(const TextSide& side);

}  // namespace retort::cli
