// Sequence-level distillation data: each prompt of a JSONL file ({"messages": [...]} ending with a
// user turn, or {"prompt": "..."}) is answered --samples-per-prompt times by the model through its
// chat template, and each answer is written as a chat example the SFT recipes read as they are.
// Work goes in fixed batches of --batch-size (prompt, sample) pairs, each sampled with the seed
// plus its batch number, and every finished batch is flushed to disk: a rerun keeps the whole
// batches already written, drops a torn tail, and continues with identical output.
#include "cli/synthetic_data.h"

#include <nlohmann/json.hpp>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>

#include "cli/model_commands.h"
#include "cli/text_commands.h"
#include "io/error.h"
#include "io/stop_signal.h"
#include "lora/lora.h"
#include "models/generate.h"
#include "models/loader.h"

namespace retort::cli {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::ordered_json;

// The prompts as conversations that end where the assistant should answer.
std::vector<Json> read_prompts(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw bad_input("cannot read the prompts file").file(path);
  std::vector<Json> prompts;
  int64_t line_number = 0;
  for (std::string line; std::getline(in, line);) {
    ++line_number;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    Json entry;
    try {
      entry = Json::parse(line);
    } catch (const Json::exception& error) {
      throw bad_input(std::string("invalid JSON: ") + error.what()).file(path).line(line_number);
    }
    if (entry.contains("messages") && entry["messages"].is_array() && !entry["messages"].empty()) {
      prompts.push_back(entry["messages"]);
    } else if (entry.contains("prompt") && entry["prompt"].is_string()) {
      prompts.push_back(Json::array({{{"role", "user"}, {"content", entry["prompt"]}}}));
    } else {
      throw bad_input("expected {\"messages\": [...]} or {\"prompt\": \"...\"}").file(path).line(line_number);
    }
    if (prompts.back().back().value("role", "") != "user") {
      throw bad_input("the conversation must end with a user message for the model to answer").file(path).line(line_number);
    }
  }
  if (prompts.empty()) throw bad_input("no prompts").file(path);
  return prompts;
}

// Whole lines already in `path`, cut back to a multiple of `batch` (a batch is kept whole or redone).
int64_t resume_point(const std::string& path, int64_t batch) {
  if (!fs::exists(path)) return 0;
  std::ifstream in(path);
  int64_t lines = 0, bytes = 0, kept_bytes = 0;
  for (std::string line; std::getline(in, line);) {
    if (in.eof()) break;  // a last line without its newline is torn
    ++lines;
    bytes += static_cast<int64_t>(line.size()) + 1;
    if (lines % batch == 0) kept_bytes = bytes;
  }
  fs::resize_file(path, static_cast<uintmax_t>(kept_bytes));
  return (lines / batch) * batch;
}

int report_generation_stop(const std::string& out_path, int64_t done, int64_t total) {
  const int signal_number = StopSignals::pending();
  std::cerr << "stopped by " << signal_name(signal_number) << " after " << done << " of " << total
            << " answers (the batch in progress was dropped)\n";
  std::cout << out_path << " holds " << done << " of " << total
            << " answers; run the same command again to continue\n";
  return exit_status_for_signal(signal_number);
}

}  // namespace

int run_generate_dataset(const ParsedArgs& args) {
  const std::string prompts_path = *args.get("prompts");
  const auto out_path = args.get("out");
  if (!out_path) throw bad_input("retort generate --prompts needs --out FILE.jsonl").key("out");
  const int64_t samples = args.get_int("samples-per-prompt", 1);
  const int64_t batch = args.get_int("batch-size", 8);
  if (samples <= 0) throw bad_input("--samples-per-prompt must be positive").key("samples-per-prompt");
  if (batch <= 0) throw bad_input("--batch-size must be positive").key("batch-size");
  const std::vector<Json> prompts = read_prompts(prompts_path);
  const TextSide side = load_text_side(*args.get("model"), args.get_or("template", ""), true);
  LoadOptions load;
  load.dtype = parse_dtype(args.get_or("dtype", "float32"));
  load.device = parse_device(args.get_or("device", "cpu"));
  LoadedModel loaded = load_model(*args.get("model"), load);
  if (const auto adapter = args.get("adapter")) load_peft_adapter(*loaded.model, *adapter);
  SamplingOptions sampling = sampling_from_args(args, 256);
  sampling.eos_token_ids = loaded.model->config().eos_token_ids;
  for (int64_t id : stop_token_ids(side)) sampling.eos_token_ids.push_back(id);
  sampling.pad_token_id = loaded.model->config().pad_token_id.value_or(0);
  const uint64_t seed = sampling.seed;

  const int64_t total = static_cast<int64_t>(prompts.size()) * samples;
  const int64_t done = resume_point(*out_path, batch);
  if (done > 0) std::cerr << "resuming after " << done << " of " << total << " answers in " << *out_path << "\n";
  std::ofstream out(*out_path, std::ios::app | std::ios::binary);
  if (!out) throw bad_input("cannot write the output").file(*out_path);
  chat::ChatRenderOptions render;
  render.add_generation_prompt = true;
  // A signal stops generation at once; the batch in progress is dropped (whole batches are the resume unit).
  StopSignals stop_signals;
  const TokenCallback keep_going = [](const std::vector<int64_t>&) { return StopSignals::pending() == 0; };
  for (int64_t first = done; first < total; first += batch) {
    if (StopSignals::pending() != 0) return report_generation_stop(*out_path, first, total);
    const int64_t count = std::min(batch, total - first);
    std::vector<std::vector<int64_t>> ids;
    for (int64_t k = first; k < first + count; ++k) {
      const auto encoded =
          encode_user_chat(*side.tokenizer, side.chat_template->render(prompts[k / samples], render), control_token_option(args));
      ids.emplace_back(encoded.begin(), encoded.end());
    }
    sampling.seed = seed + static_cast<uint64_t>(first / batch);  // the batch's own seed: resume-stable
    const GenerationResult result = generate(*loaded.model, ids, sampling, keep_going);
    if (StopSignals::pending() != 0) return report_generation_stop(*out_path, first, total);
    std::string lines;
    for (int64_t row = 0; row < count; ++row) {
      const auto& tokens = result.new_tokens[row];
      const std::vector<TokenId> answer(tokens.begin(), tokens.end() - (result.stopped_on_eos[row] ? 1 : 0));
      Json messages = prompts[(first + row) / samples];
      messages.push_back({{"role", "assistant"}, {"content", side.tokenizer->decode(answer, true)}});
      lines += Json{{"messages", messages}}.dump() + "\n";
    }
    out << lines;
    out.flush();
    if (!out) throw internal_error("writing the output failed").file(*out_path);
    std::cerr << "answers " << first + count << "/" << total << "\n";
  }
  return 0;
}

}  // namespace retort::cli
