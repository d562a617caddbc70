// Command-line parsing for `retort <command> [options]`: a table of options per
// command, strict (unknown flags are bad input, exit 2), GNU-style --name=value too.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace retort::cli {

struct OptionSpec {
  std::string name;     // without the leading "--"
  std::string metavar;  // empty for a flag that takes no value
  std::string help;
  bool repeatable = false;
};

struct ParsedArgs;
using CommandHandler = std::function<int(const ParsedArgs&)>;

struct CommandSpec {
  std::string name;
  std::string summary;        // one line for `retort --help`
  std::string usage;          // shown by `retort NAME --help`
  std::vector<OptionSpec> options;
  int min_positionals = 0;
  int max_positionals = 0;    // -1: unbounded
  CommandHandler handler;     // empty: planned, not part of this build yet
};

struct ParsedArgs {
  std::string command;
  std::map<std::string, std::vector<std::string>> values;  // option name -> values ("" for flags)
  std::vector<std::string> positionals;

  bool has(const std::string& name) const { return values.count(name) > 0; }
  std::optional<std::string> get(const std::string& name) const;
  std::string get_or(const std::string& name, const std::string& fallback) const;
  // Typed getters; a malformed number is bad input naming the option.
  int64_t get_int(const std::string& name, int64_t fallback) const;
  double get_double(const std::string& name, double fallback) const;
};

// Throws retort::Error (bad input) for unknown options, missing values, wrong
// positional counts. `--help` is handled by the caller before parsing.
ParsedArgs parse_command_args(const CommandSpec& spec, const std::vector<std::string>& args);

std::string command_help(const CommandSpec& spec);

}  // namespace retort::cli
