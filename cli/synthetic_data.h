// `retort generate --prompts FILE.jsonl --out FILE.jsonl`: teacher-written answers as a chat
// dataset (sequence-level distillation), batched, resumable, reproducible.
#pragma once

#include "cli/args.h"

namespace retort::cli {

int run_generate_dataset(const ParsedArgs& args);

}  // namespace retort::cli
