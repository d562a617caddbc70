// `retort generate`, `retort logits`, `retort eval`: specs and handlers.
#pragma once

#include "cli/args.h"

namespace retort::cli {

CommandSpec generate_command();
CommandSpec logits_command();
CommandSpec eval_command();

// "1,2,3" -> ids; bad_input naming `option` on anything else.
std::vector<int64_t> parse_id_list(const std::string& text, const std::string& option);

}  // namespace retort::cli
