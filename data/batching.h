// Rows and batches: one example a row (padded to the longest in the batch), or examples packed
// into fixed-length rows where positions restart at each example and attention stays inside it
// (segment ids feed a block-diagonal causal mask), so a packed row gives every example the
// loss it has alone.
#pragma once

#include <cstdint>
#include <vector>

#include "data/encoder.h"
#include "data/batch.h"

namespace retort::data {

struct Row {
  std::vector<TokenId> ids;
  std::vector<TokenId> labels;
  std::vector<int32_t> positions;  // restart at 0 for each example
  std::vector<int32_t> segments;   // 0, 1, 2... one per example in the row
};

Row single_row(const TokenizedSequence& sequence);

// Greedy, order-preserving packing: examples go into the current row while they fit.
class RowPacker {
 public:
  explicit RowPacker(int64_t row_length) : row_length_(row_length) {}
  bool fits(int64_t length) const { return static_cast<int64_t>(row_.ids.size()) + length <= row_length_; }
  // The first token of each packed example is not a target: the token before it belongs to
  // another example.
  void add(const TokenizedSequence& sequence);
  bool empty() const { return row_.ids.empty(); }
  Row take();

 private:
  int64_t row_length_;
  Row row_;
  int32_t next_segment_ = 0;
};

// How many rows greedy packing makes of sequences of these lengths (each <= row_length), and
// where each row starts (index into lengths).
std::vector<size_t> plan_rows(const std::vector<int64_t>& lengths, int64_t row_length);

// Pads rows to the longest (rounded up to `pad_to_multiple`) and makes the batch tensors:
// input_ids (padded with `pad_id`), labels (-100 on padding), attention_mask, and for packed
// rows position_ids and segment_ids (-1 on padding).
Batch collate(const std::vector<Row>& rows, TokenId pad_id, int64_t pad_to_multiple, bool packed);

}  // namespace retort::data
