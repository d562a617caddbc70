// The table of `retort` subcommands and the top-level dispatch.
#pragma once

#include <string>
#include <vector>

#include "cli/args.h"

namespace retort::cli {

const std::vector<CommandSpec>& command_table();

// Runs `retort ARGS...` (argv without the program name). Returns the exit code;
// throws retort::Error for bad input (main maps it to exit 2).
int run_cli(const std::vector<std::string>& args);

std::string version_text();

}  // namespace retort::cli
