#include "data/loader.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <exception>
#include <mutex>
#include <numeric>
#include <thread>

#include <nlohmann/json.hpp>

#include "io/error.h"
#include "io/hash.h"

namespace retort::data {
namespace {

// An error about example `where`: its file and line, and for a JSON array element its index
// in front of the field key.
Error located(const Error& error, const ErrorContext& where) {
  ErrorContext context = where;
  if (!where.key.empty() && !error.context().key.empty()) context.key = where.key + "." + error.context().key;
  else if (!error.context().key.empty()) context.key = error.context().key;
  Error result(error.kind(), error.message(), context);
  return result;
}

// splitmix64: a small, well-mixed generator whose output is the same on every platform.
struct SplitMix64 {
  uint64_t state;
  uint64_t next() {
    uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
  uint64_t below(uint64_t n) { return next() % n; }  // n << 2^64: the bias is negligible
};

std::vector<int64_t> permutation(int64_t count, uint64_t seed) {
  std::vector<int64_t> order(static_cast<size_t>(count));
  std::iota(order.begin(), order.end(), 0);
  SplitMix64 random{seed};
  for (int64_t i = count - 1; i > 0; --i) {
    std::swap(order[static_cast<size_t>(i)], order[random.below(static_cast<uint64_t>(i) + 1)]);
  }
  return order;
}

constexpr size_t kMaxSkipReasons = 10;

}  // namespace

Example DataPipeline::parse(const ExampleSource& source, int64_t index) const {
  try {
    Json value;
    try {
      value = Json::parse(source.read(index));
    } catch (const Json::parse_error& error) {
      std::string what = error.what();
      if (const size_t at = what.find("] "); at != std::string::npos) what = what.substr(at + 2);
      throw bad_input("invalid JSON: " + what);
    }
    return parse_example(value, format_);
  } catch (const Error& error) {
    throw located(error, source.where(index));
  }
}

EncodedExample DataPipeline::encode(const ExampleSource& source, int64_t index) const {
  const Example example = parse(source, index);
  try {
    return encoder_.encode(example);
  } catch (const Error& error) {
    if (error.kind() != ErrorKind::kBadInput) throw;
    throw located(error, source.where(index));
  }
}

uint64_t sequence_content_hash(const TokenizedSequence& sequence) {
  ContentHash hash;
  hash.update(sequence.ids.data(), sequence.ids.size() * sizeof(TokenId));
  hash.update(sequence.labels.data(), sequence.labels.size() * sizeof(TokenId));
  return hash.digest();
}

ScanResult scan_dataset(const ExampleSource& source, const DataPipeline& pipeline, const std::vector<int64_t>& indices,
                        bool skip_bad, int threads) {
  std::vector<int64_t> all;
  if (indices.empty()) {
    all.resize(static_cast<size_t>(source.size()));
    std::iota(all.begin(), all.end(), 0);
  }
  const std::vector<int64_t>& wanted = indices.empty() ? all : indices;
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  threads = static_cast<int>(std::min<size_t>(static_cast<size_t>(threads), std::max<size_t>(1, wanted.size() / 64)));
  struct Chunk {
    ScanResult result;
    std::exception_ptr error;
    int64_t error_position = -1;
  };
  std::vector<Chunk> chunks(static_cast<size_t>(threads));
  // Workers stop past the earliest failure seen, so the error reported is the file's first.
  std::atomic<int64_t> first_failure{INT64_MAX};
  const size_t per_chunk = (wanted.size() + chunks.size() - 1) / chunks.size();
  auto work = [&](size_t c) {
    Chunk& chunk = chunks[c];
    const size_t begin = c * per_chunk, end = std::min(wanted.size(), begin + per_chunk);
    for (size_t position = begin; position < end; ++position) {
      if (static_cast<int64_t>(position) > first_failure.load()) return;
      const int64_t index = wanted[position];
      DatasetStats& stats = chunk.result.stats;
      ++stats.examples;
      EncodedExample encoded;
      try {
        encoded = pipeline.encode(source, index);
      } catch (const Error& error) {
        if (!skip_bad || error.kind() != ErrorKind::kBadInput) {
          chunk.error = std::current_exception();
          chunk.error_position = static_cast<int64_t>(position);
          int64_t seen = first_failure.load();
          while (static_cast<int64_t>(position) < seen && !first_failure.compare_exchange_weak(seen, position)) {
          }
          return;
        }
        ++stats.skipped;
        if (stats.skip_reasons.size() < kMaxSkipReasons) stats.skip_reasons.push_back(error.what());
        continue;
      }
      if (encoded.control_strings > 0) {
        ++stats.control_examples;
        if (stats.first_control_example < 0) stats.first_control_example = index;
      }
      if (encoded.status == EncodeStatus::kControlSkipped) {
        ++stats.control_skipped;
        continue;
      }
      if (encoded.status == EncodeStatus::kDropped) {
        ++stats.dropped;
        continue;
      }
      ++stats.kept;
      if (encoded.status == EncodeStatus::kTruncated) ++stats.truncated;
      for (size_t part = 0; part < encoded.sequences.size(); ++part) {
        const TokenizedSequence& sequence = encoded.sequences[part];
        chunk.result.sequences.push_back(
            {index, static_cast<int32_t>(part), static_cast<int32_t>(sequence.ids.size()),
             sequence_content_hash(sequence)});
        ++stats.sequences;
        stats.tokens += static_cast<int64_t>(sequence.ids.size());
        stats.trained_tokens += sequence.trained_tokens();
      }
    }
  };
  std::vector<std::thread> workers;
  for (size_t c = 1; c < chunks.size(); ++c) workers.emplace_back(work, c);
  work(0);
  for (auto& worker : workers) worker.join();
  ScanResult merged;
  merged.stats.control_policy = pipeline.encoder().options().control_tokens;
  for (Chunk& chunk : chunks) {
    if (chunk.error) std::rethrow_exception(chunk.error);
    DatasetStats& total = merged.stats;
    const DatasetStats& part = chunk.result.stats;
    total.examples += part.examples;
    total.kept += part.kept;
    total.truncated += part.truncated;
    total.dropped += part.dropped;
    total.skipped += part.skipped;
    total.control_examples += part.control_examples;
    total.control_skipped += part.control_skipped;
    if (total.first_control_example < 0) total.first_control_example = part.first_control_example;  // chunks in order
    total.sequences += part.sequences;
    total.tokens += part.tokens;
    total.trained_tokens += part.trained_tokens;
    for (const auto& reason : part.skip_reasons) {
      if (total.skip_reasons.size() < kMaxSkipReasons) total.skip_reasons.push_back(reason);
    }
    merged.sequences.insert(merged.sequences.end(), chunk.result.sequences.begin(), chunk.result.sequences.end());
  }
  return merged;
}

std::pair<std::vector<int64_t>, std::vector<int64_t>> split_examples(int64_t count, double validation_fraction,
                                                                     uint64_t seed) {
  const int64_t held_out = static_cast<int64_t>(std::ceil(validation_fraction * static_cast<double>(count)));
  std::vector<int64_t> order = permutation(count, seed ^ 0x5EED5EED5EEDULL);
  std::vector<int64_t> validation(order.begin(), order.begin() + held_out);
  std::vector<int64_t> train(order.begin() + held_out, order.end());
  std::sort(validation.begin(), validation.end());
  std::sort(train.begin(), train.end());
  return {train, validation};
}

DataLoader::DataLoader(std::shared_ptr<const ExampleSource> source, const DataPipeline& pipeline,
                       std::vector<SequenceRef> sequences, LoaderOptions options)
    : source_(std::move(source)), pipeline_(pipeline), sequences_(std::move(sequences)), options_(options) {
  if (sequences_.empty()) throw bad_input("no examples are left to train on").file(source_->path());
  if (options_.batch_size < 1) throw bad_input("the batch size must be at least 1");
  if (options_.world_size < 1 || options_.rank < 0 || options_.rank >= options_.world_size) {
    throw internal_error("data loader rank " + std::to_string(options_.rank) + " of world size " +
                         std::to_string(options_.world_size));
  }
  start_epoch(0);
}

DataLoader::~DataLoader() {
  if (pending_.valid()) pending_.wait();
}

void DataLoader::start_epoch(int64_t epoch) {
  if (pending_.valid()) pending_.wait();
  pending_ = {};
  epoch_ = epoch;
  batch_ = 0;
  const int64_t count = static_cast<int64_t>(sequences_.size());
  if (options_.shuffle) {
    order_ = permutation(count, options_.seed * 0x100000001B3ULL + static_cast<uint64_t>(epoch));
  } else {
    order_.resize(sequences_.size());
    std::iota(order_.begin(), order_.end(), 0);
  }
  std::vector<size_t> row_starts;
  if (options_.packing) {
    std::vector<int64_t> lengths;
    lengths.reserve(order_.size());
    for (int64_t i : order_) lengths.push_back(sequences_[static_cast<size_t>(i)].length);
    row_starts = plan_rows(lengths, options_.row_length);
  } else {
    row_starts.resize(order_.size());
    std::iota(row_starts.begin(), row_starts.end(), 0);
  }
  row_starts.push_back(order_.size());
  row_starts_ = std::move(row_starts);
}

Batch DataLoader::assemble(int64_t batch) const {
  const size_t rows = row_starts_.size() - 1;
  const size_t first_row = static_cast<size_t>((batch * options_.world_size + options_.rank) * options_.batch_size);
  const size_t last_row = std::min(rows, first_row + static_cast<size_t>(options_.batch_size));
  std::vector<Row> batch_rows;
  std::vector<std::vector<int64_t>> sequence_ids;
  int64_t cached_example = -1;
  EncodedExample cached;
  for (size_t r = first_row; r < last_row; ++r) {
    RowPacker packer(options_.packing ? options_.row_length : INT64_MAX);
    sequence_ids.emplace_back();
    for (size_t k = row_starts_[r]; k < row_starts_[r + 1]; ++k) {
      const SequenceRef& ref = sequences_[static_cast<size_t>(order_[k])];
      sequence_ids.back().push_back(options_.first_sequence_id + order_[k]);
      if (ref.example != cached_example) {
        cached = pipeline_.encode(*source_, ref.example);
        cached_example = ref.example;
      }
      if (static_cast<size_t>(ref.part) >= cached.sequences.size() ||
          static_cast<int32_t>(cached.sequences[static_cast<size_t>(ref.part)].ids.size()) != ref.length) {
        throw bad_input("the dataset changed while it was read").file(source_->path());
      }
      const TokenizedSequence& sequence = cached.sequences[static_cast<size_t>(ref.part)];
      if (options_.packing) packer.add(sequence);
      else batch_rows.push_back(single_row(sequence));
    }
    if (options_.packing) batch_rows.push_back(packer.take());
  }
  Batch result = collate(batch_rows, options_.pad_id, options_.pad_to_multiple, options_.packing);
  result.sequence_ids = std::move(sequence_ids);
  return result;
}

int64_t DataLoader::batches_per_epoch() const {
  const int64_t rows = static_cast<int64_t>(row_starts_.size()) - 1;
  // Global batch b is kept when its last rank's first row exists.
  const int64_t last_rank_offset = (options_.world_size - 1) * options_.batch_size;
  const int64_t per_batch = options_.batch_size * options_.world_size;
  return rows > last_rank_offset ? (rows - last_rank_offset + per_batch - 1) / per_batch : 0;
}

std::optional<Batch> DataLoader::next() {
  if (batch_ >= batches_per_epoch()) {
    if (options_.epochs > 0 && epoch_ + 1 >= options_.epochs) return std::nullopt;
    start_epoch(epoch_ + 1);
  }
  Batch batch;
  if (pending_.valid() && pending_batch_ == batch_) {
    batch = pending_.get();
  } else {
    if (pending_.valid()) pending_.wait();
    batch = assemble(batch_);
  }
  ++batch_;
  // Encode the next batch while the caller trains on this one.
  if (batch_ < batches_per_epoch()) {
    pending_batch_ = batch_;
    pending_ = std::async(std::launch::async, [this, b = batch_] { return assemble(b); });
  } else {
    pending_ = {};
  }
  return batch;
}

std::string DataLoader::state() const {
  return nlohmann::json{{"epoch", epoch_},
                        {"batch", batch_},
                        {"row", batch_ * options_.batch_size * options_.world_size},
                        {"sequences", sequences_.size()}}
      .dump();
}

void DataLoader::restore(const std::string& state) {
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(state);
  } catch (const nlohmann::json::exception& error) {
    throw bad_input(std::string("unreadable data-loader state: ") + error.what());
  }
  if (json.value("sequences", -1) != static_cast<int64_t>(sequences_.size())) {
    throw bad_input("the dataset changed since the checkpoint (" + std::to_string(json.value("sequences", -1)) +
                    " sequences then, " + std::to_string(sequences_.size()) + " now)")
        .file(source_->path());
  }
  start_epoch(json.at("epoch").get<int64_t>());
  const int64_t per_batch = options_.batch_size * options_.world_size;
  // A state from before data parallelism has no row: its batches were this loader's micro-batches.
  const int64_t row = json.contains("row") ? json.at("row").get<int64_t>() : json.at("batch").get<int64_t>() * per_batch;
  if (row % per_batch != 0) {
    throw bad_input("the checkpoint stopped at row " + std::to_string(row) + " of the epoch, which is not a whole " +
                    "batch of " + std::to_string(per_batch) + " rows (micro_batch_size x world size); resume with a " +
                    "world size that divides it")
        .file(source_->path());
  }
  batch_ = row / per_batch;
}

}  // namespace retort::data
