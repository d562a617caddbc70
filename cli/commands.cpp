// Subcommand table and dispatch. Each command's work lives in its own library;
// this file only describes the commands and routes to them.
#include "cli/commands.h"

#include <torch/headeronly/version.h>

#include <cstdio>
#include <iostream>

#include "cli/data_command.h"
#include "cli/export_command.h"
#include "cli/model_commands.h"
#include "cli/prune_command.h"
#include "cli/run_command.h"
#include "cli/text_commands.h"
#include "cli/version.h"
#include "io/error.h"
#include "io/text.h"
#include "models/gemm.h"
#include "train/device_info.h"


namespace retort::cli {
namespace {

std::vector<CommandSpec> build_table() {
  // Commands land with their issues; until then `--help` says they are planned.
  return {
      run_command(),
      generate_command(),
      chat_command(),
      eval_command(),
      logits_command(),
      tokenize_command(),
      data_command(),
      export_command(),
      prune_command(),
      cache_teacher_command(),
      {"bench", "Benchmarks of Retort's kernels and training steps on this machine.",
       "retort bench [options]", {}, 0, 0, {}},
  };
}

std::string top_level_help() {
  std::string out =
      "usage: retort COMMAND [options]\n"
      "       retort --version | --help\n\n"
      "Fine-tune and distill Llama-family LLMs; export HF, PEFT and GGUF.\n\ncommands:\n";
  for (const CommandSpec& spec : command_table()) {
    std::string name = spec.name;
    name.resize(15, ' ');
    out += "  " + name + spec.summary + (spec.handler ? "" : " (planned)") + "\n";
  }
  out += "\nRun 'retort COMMAND --help' for a command's options.\n";
  return out;
}

std::vector<std::string> command_names() {
  std::vector<std::string> names;
  for (const CommandSpec& spec : command_table()) names.push_back(spec.name);
  return names;
}

}  // namespace

const std::vector<CommandSpec>& command_table() {
  static const std::vector<CommandSpec> table = build_table();
  return table;
}

std::string version_text() {
  const DeviceReport devices = query_devices();
  std::string text = "retort " RETORT_VERSION "\nLibTorch " TORCH_VERSION "\nBuild: " + describe_build(devices) +
                     "\nCUDA usable: ";
  text += describe_cuda(devices);
  text += "\nCPU float32 matmul: " + cpu_gemm_name(cpu_gemm_backend()) + " (RETORT_CPU_GEMM=blas|onednn chooses)\n";
  return text;
}

int run_cli(const std::vector<std::string>& args) {
  if (args.empty()) {
    throw bad_input("no command given\n" + top_level_help());
  }
  const std::string& first = args[0];
  if (first == "--help" || first == "-h" || first == "help") {
    std::cout << top_level_help();
    return kExitOk;
  }
  if (first == "--version" || first == "-V") {
    if (args.size() > 1) throw bad_input("--version takes no further arguments");
    std::cout << version_text();
    return kExitOk;
  }
  if (first.rfind("-", 0) == 0) {
    throw bad_input("unknown option '" + first + "' (see 'retort --help')");
  }
  const CommandSpec* spec = nullptr;
  for (const CommandSpec& candidate : command_table()) {
    if (candidate.name == first) spec = &candidate;
  }
  if (spec == nullptr) {
    std::string message = "unknown command '" + first + "'";
    const std::string suggestion = nearest_match(first, command_names());
    if (!suggestion.empty()) message += "; did you mean '" + suggestion + "'?";
    throw bad_input(message + " (commands: " + join(command_names(), ", ") + ")");
  }
  const std::vector<std::string> rest(args.begin() + 1, args.end());
  for (const std::string& arg : rest) {
    if (arg == "--") break;
    if (arg == "--help" || arg == "-h") {
      std::cout << command_help(*spec);
      return kExitOk;
    }
  }
  const ParsedArgs parsed = parse_command_args(*spec, rest);
  if (!spec->handler) {
    throw internal_error("'retort " + spec->name + "' is planned but not part of this build yet");
  }
  return spec->handler(parsed);
}

}  // namespace retort::cli
