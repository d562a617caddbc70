// `retort run RECIPE.yaml [key.path=value ...]` and `retort cache-teacher RECIPE.yaml [...]`.
#pragma once

#include "cli/args.h"

namespace retort::cli {

CommandSpec run_command();
CommandSpec cache_teacher_command();

}  // namespace retort::cli
