// `retort generate`, `retort logits`, `retort eval`: specs and handlers.
#pragma once

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

// Each line of a JSONL file of {"ids": [...]} or {"text": "..."} (tokenized with the model's
// tokenizer, BOS as it adds it) as token ids; bad_input with file:line on anything else.
void for_each_token_sequence(const std::string& path, const std::string& model_path, int64_t vocab_size,
                             const std::function<void(std::vector<int64_t>)>& sequence);

// "1,2,3" -> ids; bad_input naming `option` on anything else.
std::vector<int64_t> parse_id_list(const std::string& text, const std::string& option);

}  // namespace retort::cli
