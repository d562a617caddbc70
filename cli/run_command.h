// `retort run RECIPE.yaml [key.path=value ...]`.
#pragma once

#include "cli/args.h"

namespace retort::cli {

CommandSpec run_command();

}  // namespace retort::cli
