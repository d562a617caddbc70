// `retort generate`, `retort logits`, `retort eval`: specs and handlers.
#pragma once

#include "data/token_sequences.h"

#include <functional>

#include "cli/args.h"
#include "models/generate.h"

namespace retort::cli {

CommandSpec generate_command();
CommandSpec logits_command();
CommandSpec eval_command();

// --max-new-tokens, --temperature (0 = greedy), --top-k, --top-p, --repetition-penalty, --seed;
// options the command does not declare keep their defaults.
SamplingOptions sampling_from_args(const ParsedArgs& args, int64_t default_max_new_tokens);

// The model's own tokenizer, loaded when first asked for (data/token_sequences.h).
data::TokenizerSource model_tokenizer(const std::string& model_path);

// "1,2,3" -> ids; bad_input naming `option` on anything else.
std::vector<int64_t> parse_id_list(const std::string& text, const std::string& option);

}  // namespace retort::cli
