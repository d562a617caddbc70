// Text generation with a KV cache: greedy or sampled (temperature, top-k, top-p),
// repetition penalty, seeds, EOS stopping, batched prompts with left padding.
// Reference: transformers generation/utils.py and logits_process.py (same processor order).
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "models/causal_lm.h"

namespace retort {

struct SamplingOptions {
  int64_t max_new_tokens = 128;
  bool greedy = true;                 // false: sample
  double temperature = 1.0;
  int64_t top_k = 0;                  // 0: off
  double top_p = 1.0;                 // 1: off
  double repetition_penalty = 1.0;    // 1: off
  uint64_t seed = 0;
  std::vector<int64_t> eos_token_ids;  // stop on any of them (the EOS is kept in the output)
  int64_t pad_token_id = 0;
};

// Called after every decode step with the token chosen for each still-running row
// (finished rows get -1); return false to stop early.
using TokenCallback = std::function<bool(const std::vector<int64_t>& tokens)>;

struct GenerationResult {
  std::vector<std::vector<int64_t>> new_tokens;  // per prompt, up to and including its EOS
  std::vector<bool> stopped_on_eos;
};

GenerationResult generate(CausalLM& model, const std::vector<std::vector<int64_t>>& prompts,
                          const SamplingOptions& options, const TokenCallback& on_step = {});

// Applies HF's logits processors in order (repetition penalty, temperature, top-k, top-p)
// to scores [B, V] float32 given the ids seen so far [B, S]; used by generate().
at::Tensor process_logits(const at::Tensor& scores, const at::Tensor& seen_ids, const SamplingOptions& options);

}  // namespace retort
