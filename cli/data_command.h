// `retort data inspect`: a dataset as a recipe would see it.
#pragma once

#include "cli/args.h"

namespace retort::cli {

CommandSpec data_command();

}  // namespace retort::cli
