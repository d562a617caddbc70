// Sequence-level distillation data: a teacher writes answers to a file of prompts, giving a chat
// dataset (JSONL, {"messages": [...]} per line). Batched, reproducible (each batch samples with
// its own seed) and resumable: whole batches are the unit, so a rerun after a stop continues the
// same file and writes the same lines an uninterrupted run would.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "models/causal_lm.h"
#include "models/generate.h"
#include "tokenizer/tokenizer.h"

namespace retort {

// A prompts file: {"messages": [...]} or {"prompt": "..."} per line, each ending with a user turn.
std::vector<nlohmann::ordered_json> read_prompt_conversations(const std::string& path);

struct SyntheticDataOptions {
  std::string prompts_path;
  std::string out_path;
  int64_t samples_per_prompt = 1;
  int64_t batch_size = 8;
  SamplingOptions sampling;  // eos ids and padding set; `seed` is the first batch's seed
  // The token ids of a conversation rendered up to the assistant's turn.
  std::function<std::vector<int64_t>(const nlohmann::ordered_json& messages)> encode_prompt;
  std::function<void(const std::string&)> info;  // progress lines
};

struct SyntheticDataOutcome {
  int64_t answers_done = 0;  // lines in the output
  int64_t answers_total = 0;
  int stop_signal = 0;  // a signal stopped it (the batch in progress dropped); rerun to continue
};

// Generates the answers not yet in options.out_path. Signals are caught while it runs (StopSignals).
SyntheticDataOutcome write_synthetic_dataset(CausalLM& teacher, const Tokenizer& tokenizer,
                                             const SyntheticDataOptions& options);

}  // namespace retort
