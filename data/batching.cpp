#include "data/batching.h"

#include <ATen/ATen.h>

#include <algorithm>

#include "io/error.h"

namespace retort::data {

Row single_row(const TokenizedSequence& sequence) {
  Row row;
  row.ids = sequence.ids;
  row.labels = sequence.labels;
  row.positions.resize(row.ids.size());
  for (size_t i = 0; i < row.positions.size(); ++i) row.positions[i] = static_cast<int32_t>(i);
  row.segments.assign(row.ids.size(), 0);
  return row;
}

void RowPacker::add(const TokenizedSequence& sequence) {
  if (!fits(static_cast<int64_t>(sequence.ids.size()))) throw internal_error("packed example does not fit its row");
  const int32_t segment = next_segment_++;
  for (size_t i = 0; i < sequence.ids.size(); ++i) {
    row_.ids.push_back(sequence.ids[i]);
    row_.labels.push_back(i == 0 ? kIgnoreLabel : sequence.labels[i]);
    row_.positions.push_back(static_cast<int32_t>(i));
    row_.segments.push_back(segment);
  }
}

Row RowPacker::take() {
  Row row = std::move(row_);
  row_ = Row();
  next_segment_ = 0;
  return row;
}

std::vector<size_t> plan_rows(const std::vector<int64_t>& lengths, int64_t row_length) {
  std::vector<size_t> starts;
  int64_t used = row_length;  // forces a new row for the first sequence
  for (size_t i = 0; i < lengths.size(); ++i) {
    if (used + lengths[i] > row_length) {
      starts.push_back(i);
      used = 0;
    }
    used += lengths[i];
  }
  return starts;
}

Batch collate(const std::vector<Row>& rows, TokenId pad_id, int64_t pad_to_multiple, bool packed) {
  if (rows.empty()) throw internal_error("an empty batch");
  int64_t width = 0;
  for (const Row& row : rows) width = std::max<int64_t>(width, static_cast<int64_t>(row.ids.size()));
  if (pad_to_multiple > 1) width = (width + pad_to_multiple - 1) / pad_to_multiple * pad_to_multiple;
  const int64_t batch = static_cast<int64_t>(rows.size());
  at::Tensor ids = at::full({batch, width}, pad_id, at::kLong);
  at::Tensor labels = at::full({batch, width}, kIgnoreLabel, at::kLong);
  at::Tensor mask = at::zeros({batch, width}, at::kLong);
  at::Tensor positions = at::zeros({batch, width}, at::kLong);
  at::Tensor segments = at::full({batch, width}, -1, at::kLong);
  auto ids_a = ids.accessor<int64_t, 2>(), labels_a = labels.accessor<int64_t, 2>(), mask_a = mask.accessor<int64_t, 2>();
  auto positions_a = positions.accessor<int64_t, 2>(), segments_a = segments.accessor<int64_t, 2>();
  for (int64_t b = 0; b < batch; ++b) {
    const Row& row = rows[static_cast<size_t>(b)];
    for (size_t t = 0; t < row.ids.size(); ++t) {
      ids_a[b][static_cast<int64_t>(t)] = row.ids[t];
      labels_a[b][static_cast<int64_t>(t)] = row.labels[t];
      mask_a[b][static_cast<int64_t>(t)] = 1;
      positions_a[b][static_cast<int64_t>(t)] = row.positions[t];
      segments_a[b][static_cast<int64_t>(t)] = row.segments[t];
    }
  }
  Batch result;
  result.input_ids = ids;
  result.labels = labels;
  result.attention_mask = mask;
  if (packed) {
    result.position_ids = positions;
    result.segment_ids = segments;
  }
  return result;
}

}  // namespace retort::data
