// Sequence-level distillation data: each prompt of a JSONL file ({"messages": [...]} ending with a
// user turn, or {"prompt": "..."}) is answered --samples-per-prompt times by the model through its
// chat template, and each answer is written as a chat example the SFT recipes read as they are.
// Work goes in fixed batches of --batch-size (prompt, sample) pairs, each sampled with the seed
// plus its batch number, and every finished batch is flushed to disk: a rerun keeps the whole
// batches already written, drops a torn tail, and continues with identical output.
#include "distill/synthetic_data.h"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <iostream>

#include "io/error.h"
#include "io/stop_signal.h"

namespace retort {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::ordered_json;

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

}  // namespace

// The prompts as conversations that end where the assistant should answer.
std::vector<Json> read_prompt_conversations(const std::string& path) {
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

SyntheticDataOutcome write_synthetic_dataset(CausalLM& teacher, const Tokenizer& tokenizer,
                                             const SyntheticDataOptions& options) {
  const int64_t batch = options.batch_size, samples = options.samples_per_prompt;
  if (samples <= 0) throw bad_input("--samples-per-prompt must be positive").key("samples-per-prompt");
  if (batch <= 0) throw bad_input("--batch-size must be positive").key("batch-size");
  const std::vector<Json> prompts = read_prompt_conversations(options.prompts_path);
  const std::string& out_path = options.out_path;
  SyntheticDataOutcome outcome;
  outcome.answers_total = static_cast<int64_t>(prompts.size()) * samples;
  const int64_t total = outcome.answers_total;
  const int64_t done = resume_point(out_path, batch);
  if (done > 0 && options.info) {
    options.info("resuming after " + std::to_string(done) + " of " + std::to_string(total) + " answers in " + out_path);
  }
  std::ofstream out(out_path, std::ios::app | std::ios::binary);
  if (!out) throw bad_input("cannot write the output").file(out_path);
  // A signal stops generation at once; the batch in progress is dropped (whole batches are the resume unit).
  StopSignals stop_signals;
  const TokenCallback keep_going = [](const std::vector<int64_t>&) { return StopSignals::pending() == 0; };
  SamplingOptions sampling = options.sampling;
  for (int64_t first = done; first < total; first += batch) {
    outcome.answers_done = first;
    if ((outcome.stop_signal = StopSignals::pending()) != 0) return outcome;
    const int64_t count = std::min(batch, total - first);
    std::vector<std::vector<int64_t>> ids;
    for (int64_t k = first; k < first + count; ++k) ids.push_back(options.encode_prompt(prompts[k / samples]));
    sampling.seed = options.sampling.seed + static_cast<uint64_t>(first / batch);  // the batch's own seed: resume-stable
    const GenerationResult result = generate(teacher, ids, sampling, keep_going);
    if ((outcome.stop_signal = StopSignals::pending()) != 0) return outcome;
    std::string lines;
    for (int64_t row = 0; row < count; ++row) {
      const auto& tokens = result.new_tokens[row];
      const std::vector<TokenId> answer(tokens.begin(), tokens.end() - (result.stopped_on_eos[row] ? 1 : 0));
      Json messages = prompts[(first + row) / samples];
      messages.push_back({{"role", "assistant"}, {"content", tokenizer.decode(answer, true)}});
      lines += Json{{"messages", messages}}.dump() + "\n";
    }
    out << lines;
    out.flush();
    if (!out) throw internal_error("writing the output failed").file(out_path);
    if (options.info) options.info("answers " + std::to_string(first + count) + "/" + std::to_string(total));
  }
  outcome.answers_done = total;
  return outcome;
}

}  // namespace retort
