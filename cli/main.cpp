// Entry point of the `retort` executable: maps every failure to one message and an
// exit code (2 bad input, 1 internal) so no user input can abort the process.
#include <cstdio>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "io/error.h"

int main(int argc, char** argv) {
  try {
    const std::vector<std::string> args(argv + 1, argv + argc);
    return retort::cli::run_cli(args);
  } catch (...) {
    const retort::ExitReport report = retort::exit_report_for_current_exception();
    std::fflush(stdout);
    std::fprintf(stderr, "retort: error: %s\n", report.message.c_str());
    return report.code;
  }
}
