// What the data layer hands to training: batches of token rows with their labels, a source of
// them that can say and restore where it is, and the next-token rule every loss follows.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace retort {

// A label that carries no loss (prompt tokens, padding): PyTorch's cross_entropy ignore_index.
inline constexpr int64_t kIgnoreIndex = -100;

struct Batch {
  at::Tensor input_ids;       // [B, T] int64
  at::Tensor labels;          // [B, T] int64, kIgnoreIndex where nothing is learned
  at::Tensor attention_mask;  // [B, T] 1 = token, 0 = padding (optional)
  at::Tensor position_ids;    // [B, T] (optional; packing restarts them per example)
  at::Tensor segment_ids;     // [B, T] (optional) packed rows: attention stays within a segment
  // Per row, the loader's numbers of the sequences in it, in order (a cached teacher's keys).
  std::vector<std::vector<int64_t>> sequence_ids = {};
  // Tokens that carry loss (see next_token_targets).
  int64_t trained_tokens() const;
};

// The shift-and-mask rule, stated once: position t of a row predicts the label at t + 1, and a
// prediction counts when that label is not kIgnoreIndex (transformers' ForCausalLMLoss: shift
// the labels left by one, ignore_index -100).
struct NextTokenTargets {
  at::Tensor labels;   // [B, T - 1]: labels[:, 1:], lined up with the model's outputs [:, :-1]
  at::Tensor counted;  // [B, T - 1] bool: the predictions that carry loss
};
NextTokenTargets next_token_targets(const at::Tensor& labels);

class BatchSource {
 public:
  virtual ~BatchSource() = default;
  virtual std::optional<Batch> next() = 0;  // nullopt: the data is exhausted
  // The position to resume from (epoch, offset, shuffle seed...), as JSON text.
  virtual std::string state() const = 0;
  virtual void restore(const std::string& state) = 0;
};

}  // namespace retort
