#include "models/generate.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>

#include "io/error.h"

namespace retort {

at::Tensor process_logits(const at::Tensor& scores_in, const at::Tensor& seen_ids, const SamplingOptions& options) {
  at::Tensor scores = scores_in;
  if (options.repetition_penalty != 1.0) {
    // HF RepetitionPenaltyLogitsProcessor: divide positive scores, multiply negative ones.
    const at::Tensor seen = at::gather(scores, 1, seen_ids);
    const at::Tensor penalised =
        at::where(seen < 0, seen * options.repetition_penalty, seen / options.repetition_penalty);
    scores = scores.scatter(1, seen_ids, penalised);
  }
  if (options.greedy) return scores;
  if (options.temperature != 1.0) scores = scores / options.temperature;
  const double kFilter = -std::numeric_limits<double>::infinity();
  if (options.top_k > 0) {
    const int64_t k = std::min<int64_t>(options.top_k, scores.size(-1));
    const at::Tensor threshold = std::get<0>(at::topk(scores, k)).narrow(-1, k - 1, 1);
    scores = scores.masked_fill(scores < threshold, kFilter);
  }
  if (options.top_p < 1.0) {
    // HF TopPLogitsWarper: sort ascending, drop the low tail whose mass is <= 1 - top_p.
    auto [sorted, order] = at::sort(scores, /*dim=*/-1, /*descending=*/false);
    const at::Tensor cumulative = sorted.softmax(-1).cumsum(-1);
    at::Tensor remove = cumulative <= (1 - options.top_p);
    remove.narrow(-1, remove.size(-1) - 1, 1).fill_(false);  // keep at least one token
    scores = scores.masked_fill(remove.scatter(1, order, remove), kFilter);
  }
  return scores;
}

GenerationResult generate(CausalLM& model, const std::vector<std::vector<int64_t>>& prompts,
                          const SamplingOptions& options, const TokenCallback& on_step) {
  if (prompts.empty()) throw bad_input("no prompt given");
  size_t longest = 0;
  for (const auto& prompt : prompts) {
    if (prompt.empty()) throw bad_input("empty prompt (no token ids)");
    for (int64_t id : prompt) {
      if (id < 0 || id >= model.config().vocab_size) {
        throw bad_input("token id " + std::to_string(id) + " is outside the vocabulary (size " +
                        std::to_string(model.config().vocab_size) + ")");
      }
    }
    longest = std::max(longest, prompt.size());
  }
  if (!options.greedy && options.temperature <= 0) throw bad_input("temperature must be positive when sampling");
  c10::InferenceMode inference;
  const int64_t batch = static_cast<int64_t>(prompts.size());
  const int64_t prompt_len = static_cast<int64_t>(longest);
  const at::Device device = model.device();
  // Left padding: real tokens end at the same column, so every row decodes in lockstep.
  at::Tensor ids = at::full({batch, prompt_len}, options.pad_token_id, at::kLong);
  at::Tensor mask = at::zeros({batch, prompt_len}, at::kLong);
  for (int64_t row = 0; row < batch; ++row) {
    const auto& prompt = prompts[row];
    const int64_t offset = prompt_len - static_cast<int64_t>(prompt.size());
    ids[row].narrow(0, offset, prompt.size()).copy_(at::tensor(prompt, at::kLong));
    mask[row].narrow(0, offset, prompt.size()).fill_(1);
  }
  ids = ids.to(device);
  mask = mask.to(device);
  KVCache cache = model.make_cache(batch, prompt_len + options.max_new_tokens);
  at::Generator generator = at::detail::createCPUGenerator(options.seed);

  GenerationResult result;
  result.new_tokens.resize(batch);
  result.stopped_on_eos.assign(batch, false);
  std::vector<bool> running(batch, true);
  at::Tensor seen = ids;
  at::Tensor step_ids = ids;
  at::Tensor positions = (mask.cumsum(-1) - 1).clamp_min(0);
  for (int64_t step = 0; step < options.max_new_tokens; ++step) {
    ForwardOptions forward;
    forward.cache = &cache;
    forward.attention_mask = mask;
    forward.position_ids = positions;
    const at::Tensor hidden = model.forward_hidden(step_ids, forward);
    at::Tensor scores = model.logits(hidden.select(1, hidden.size(1) - 1)).to(at::kFloat);  // [B, V]
    scores = process_logits(scores, seen, options);
    at::Tensor next;
    if (options.greedy) {
      next = scores.argmax(-1);
    } else {
      next = at::multinomial(scores.softmax(-1).to(at::kCPU), 1, false, generator).squeeze(-1).to(device);
    }
    const at::Tensor next_cpu = next.to(at::kCPU);
    std::vector<int64_t> chosen(batch, -1);
    for (int64_t row = 0; row < batch; ++row) {
      if (!running[row]) {
        next_cpu[row].fill_(options.pad_token_id);
        continue;
      }
      const int64_t token = next_cpu[row].item<int64_t>();
      chosen[row] = token;
      result.new_tokens[row].push_back(token);
      const auto& eos = options.eos_token_ids;
      if (std::find(eos.begin(), eos.end(), token) != eos.end()) {
        running[row] = false;
        result.stopped_on_eos[row] = true;
      }
    }
    const bool keep_going = on_step ? on_step(chosen) : true;
    if (!keep_going || std::none_of(running.begin(), running.end(), [](bool r) { return r; })) break;
    step_ids = next_cpu.to(device).unsqueeze(1);
    seen = at::cat({seen, step_ids}, 1);
    mask = at::cat({mask, at::ones({batch, 1}, mask.options())}, 1);
    positions = positions.select(1, positions.size(1) - 1).unsqueeze(1) + 1;
  }
  return result;
}

}  // namespace retort
