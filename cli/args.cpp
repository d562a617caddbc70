#include "cli/args.h"

#include <charconv>
#include <cstdlib>

#include "io/error.h"
#include "io/hub_cache.h"
#include "io/text.h"

namespace retort::cli {
namespace {

const OptionSpec* find_option(const CommandSpec& spec, const std::string& name) {
  for (const OptionSpec& option : spec.options) {
    if (option.name == name) return &option;
  }
  return nullptr;
}

Error unknown_option(const CommandSpec& spec, const std::string& name) {
  std::vector<std::string> names;
  for (const OptionSpec& option : spec.options) names.push_back(option.name);
  names.push_back("help");
  std::string message = "retort " + spec.name + ": unknown option '--" + name + "'";
  const std::string suggestion = nearest_match(name, names);
  if (!suggestion.empty()) message += "; did you mean '--" + suggestion + "'?";
  message += " (see 'retort " + spec.name + " --help')";
  return bad_input(message);
}

}  // namespace

std::optional<std::string> ParsedArgs::get(const std::string& name) const {
  auto it = values.find(name);
  if (it == values.end() || it->second.empty()) return std::nullopt;
  return it->second.back();
}

std::string ParsedArgs::get_or(const std::string& name, const std::string& fallback) const {
  return get(name).value_or(fallback);
}

int64_t ParsedArgs::get_int(const std::string& name, int64_t fallback) const {
  const auto text = get(name);
  if (!text) return fallback;
  int64_t value = 0;
  const auto [end, ec] = std::from_chars(text->data(), text->data() + text->size(), value);
  if (ec != std::errc() || end != text->data() + text->size()) {
    throw bad_input("option '--" + name + "' expects an integer, got '" + *text + "'");
  }
  return value;
}

double ParsedArgs::get_double(const std::string& name, double fallback) const {
  const auto text = get(name);
  if (!text) return fallback;
  char* end = nullptr;
  const double value = std::strtod(text->c_str(), &end);
  if (text->empty() || end != text->c_str() + text->size()) {
    throw bad_input("option '--" + name + "' expects a number, got '" + *text + "'");
  }
  return value;
}

ParsedArgs parse_command_args(const CommandSpec& spec, const std::vector<std::string>& args) {
  ParsedArgs parsed;
  parsed.command = spec.name;
  bool options_done = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (options_done || arg.size() < 2 || arg.rfind("--", 0) != 0) {
      if (!options_done && arg.size() > 1 && arg[0] == '-' && arg != "-") {
        throw bad_input("retort " + spec.name + ": unknown option '" + arg +
                        "' (options are spelled --name; see 'retort " + spec.name + " --help')");
      }
      parsed.positionals.push_back(arg);
      continue;
    }
    if (arg == "--") {
      options_done = true;
      continue;
    }
    std::string name = arg.substr(2);
    std::optional<std::string> inline_value;
    if (const size_t eq = name.find('='); eq != std::string::npos) {
      inline_value = name.substr(eq + 1);
      name = name.substr(0, eq);
    }
    const OptionSpec* option = find_option(spec, name);
    if (option == nullptr) throw unknown_option(spec, name);
    if (!option->repeatable && parsed.has(name)) {
      throw bad_input("retort " + spec.name + ": option '--" + name + "' given twice");
    }
    if (option->metavar.empty()) {
      if (inline_value) {
        throw bad_input("retort " + spec.name + ": option '--" + name + "' takes no value");
      }
      parsed.values[name].push_back("");
      continue;
    }
    if (inline_value) {
      parsed.values[name].push_back(*inline_value);
    } else if (i + 1 < args.size()) {
      parsed.values[name].push_back(args[++i]);
    } else {
      throw bad_input("retort " + spec.name + ": option '--" + name + "' needs a value (" +
                      option->metavar + ")");
    }
  }
  const int count = static_cast<int>(parsed.positionals.size());
  if (count < spec.min_positionals ||
      (spec.max_positionals >= 0 && count > spec.max_positionals)) {
    std::string message = "retort " + spec.name + ": ";
    if (count < spec.min_positionals) {
      message += "missing argument";
    } else {
      message += "unexpected argument '" + parsed.positionals[spec.max_positionals] + "'";
    }
    throw bad_input(message + "\nusage: " + spec.usage);
  }
  // Models and adapters may be named by Hugging Face id and found in the local cache.
  for (const char* name : {"model", "teacher", "adapter"}) {
    if (auto it = parsed.values.find(name); it != parsed.values.end()) {
      for (std::string& value : it->second) value = resolve_model_path(value, std::string("--") + name);
    }
  }
  return parsed;
}

std::string command_help(const CommandSpec& spec) {
  std::string out = "usage: " + spec.usage + "\n\n" + spec.summary + "\n";
  if (!spec.handler) out += "\n(Planned; not part of this build yet.)\n";
  out += "\noptions:\n";
  size_t width = 6;  // "--help"
  for (const OptionSpec& option : spec.options) {
    width = std::max(width, option.name.size() + 2 + (option.metavar.empty() ? 0 : option.metavar.size() + 1));
  }
  auto line = [&](const std::string& left, const std::string& help) {
    out += "  " + left + std::string(width + 2 - left.size(), ' ') + help + "\n";
  };
  for (const OptionSpec& option : spec.options) {
    line("--" + option.name + (option.metavar.empty() ? "" : " " + option.metavar), option.help);
  }
  line("--help", "show this help and exit");
  return out;
}

}  // namespace retort::cli
