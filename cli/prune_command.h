// `retort prune`: a student initialised from a teacher by keeping some of its layers and
// optionally narrowing its MLPs (distill/prune.h), written as an HF checkpoint.
#pragma once

#include "cli/args.h"

namespace retort::cli {

CommandSpec prune_command();

}  // namespace retort::cli
