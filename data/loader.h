// The resumable loader: a scan encodes every example once (in worker threads) to learn its
// length and count what is kept, truncated, dropped or skipped; each epoch then walks a seeded
// permutation of the kept sequences, re-reading and re-encoding only the examples of the next
// batches (prefetched on a worker thread), so memory stays bounded whatever the file size.
// The state (epoch, position) restores mid-epoch exactly.
#pragma once

#include <cstdint>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "data/batching.h"
#include "data/encoder.h"
#include "data/example.h"
#include "data/source.h"
#include "data/batch.h"

namespace retort::data {

// Parsing and encoding of one example: the format, the tokenizer and the template.
class DataPipeline {
 public:
  DataPipeline(FormatOptions format, const ExampleEncoder& encoder) : format_(std::move(format)), encoder_(encoder) {}
  // Reads, parses and encodes example `index` of `source`; bad input carries its file:line.
  EncodedExample encode(const ExampleSource& source, int64_t index) const;
  Example parse(const ExampleSource& source, int64_t index) const;
  const ExampleEncoder& encoder() const { return encoder_; }

 private:
  FormatOptions format_;
  const ExampleEncoder& encoder_;
};

struct DatasetStats {
  int64_t examples = 0;   // examples read (all lines given to the scan)
  int64_t kept = 0;       // examples that yield at least one sequence
  int64_t truncated = 0;  // kept after removing turns, or split into pieces
  int64_t dropped = 0;    // longer than max_seq_len under the drop policy
  int64_t skipped = 0;    // bad examples skipped (on_bad_example: skip)
  // Chat examples whose message text holds a control-token string ("<|im_end|>"), how they were
  // read (data.control_tokens_in_content), how many of them that dropped (skip), and the first.
  int64_t control_examples = 0;
  chat::ControlTokenPolicy control_policy = chat::ControlTokenPolicy::kLiteral;
  int64_t control_skipped = 0;
  int64_t first_control_example = -1;  // its index in the source
  int64_t sequences = 0;
  int64_t tokens = 0;          // in the kept sequences
  int64_t trained_tokens = 0;  // of those, the ones with a label
  std::vector<std::string> skip_reasons;  // the first few, with file:line
};

// One kept sequence: which example, which piece of it, its length, and a hash of its ids and
// labels (a teacher cache made from other tokens is refused by it).
struct SequenceRef {
  int64_t example = 0;
  int32_t part = 0;
  int32_t length = 0;
  uint64_t content_hash = 0;
};

uint64_t sequence_content_hash(const TokenizedSequence& sequence);

struct ScanResult {
  std::vector<SequenceRef> sequences;  // in file order
  DatasetStats stats;
};

// Encodes the examples `indices` of `source` (all when empty) with `threads` workers (0: the
// hardware's). A bad example is rethrown with its file:line unless `skip_bad`, which counts it.
ScanResult scan_dataset(const ExampleSource& source, const DataPipeline& pipeline, const std::vector<int64_t>& indices,
                        bool skip_bad, int threads);

// Splits example indices [0, count) into train and validation by a seeded permutation.
std::pair<std::vector<int64_t>, std::vector<int64_t>> split_examples(int64_t count, double validation_fraction,
                                                                     uint64_t seed);

struct LoaderOptions {
  int64_t batch_size = 1;       // rows per batch
  bool packing = false;         // rows of max_seq_len holding several examples
  int64_t row_length = 2048;    // packed row length (the encoder's max_seq_len)
  int64_t pad_to_multiple = 1;  // pad each batch's width up to a multiple of this
  bool shuffle = true;
  uint64_t seed = 0;
  int64_t epochs = 1;  // 0: repeat forever
  TokenId pad_id = 0;
  int64_t first_sequence_id = 0;  // sequence i is numbered first_sequence_id + i in Batch::sequence_ids
  // Data parallel: the epoch's rows in order form global batches of batch_size x world_size rows;
  // rank r reads rows [r x batch_size, (r + 1) x batch_size) of each, so every world size walks the
  // same rows in the same order. A last global batch that cannot give every rank a row is left out.
  int64_t rank = 0;
  int64_t world_size = 1;
};

class DataLoader : public BatchSource {
 public:
  DataLoader(std::shared_ptr<const ExampleSource> source, const DataPipeline& pipeline,
             std::vector<SequenceRef> sequences, LoaderOptions options);
  ~DataLoader() override;

  std::optional<Batch> next() override;
  // {"epoch": e, "batch": b, "row": first row of batch b}: a resume with another world size
  // continues at the same row.
  std::string state() const override;
  void restore(const std::string& state) override;

  int64_t batches_per_epoch() const;  // global batches
  int64_t epoch() const { return epoch_; }

 private:
  void start_epoch(int64_t epoch);
  Batch assemble(int64_t batch) const;

  std::shared_ptr<const ExampleSource> source_;
  const DataPipeline& pipeline_;
  std::vector<SequenceRef> sequences_;
  LoaderOptions options_;
  std::vector<int64_t> order_;      // this epoch's permutation of sequences_
  std::vector<size_t> row_starts_;  // rows of this epoch as ranges of order_ (one past the end last)
  int64_t epoch_ = 0;
  int64_t batch_ = 0;  // next batch of this epoch
  std::future<Batch> pending_;  // batch `pending_batch_` of this epoch, being assembled
  int64_t pending_batch_ = -1;
};

}  // namespace retort::data
