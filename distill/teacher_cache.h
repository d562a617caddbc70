// The offline teacher cache: a directory of shards holding, for every trained token of a dataset,
// the teacher's top-k ids and log-probabilities and the log of its remaining mass (distill/topk_codec.h),
// one zstd frame per sequence, with a manifest (cache.json) recording what the cache was made
// from. A student run reads the targets of each batch from it and no teacher is loaded.
//
// Shard file (little-endian): "RTKCACHE", u32 version, u32 encoding, u64 identity hash,
// i64 first sequence, i64 sequences, i64 top_k, then per sequence {u64 offset, u32 frame bytes,
// u32 raw bytes, u32 tokens, u32 zero}, then the frames. Shards are written whole (temp + rename),
// so an interrupted cache-teacher keeps every finished shard and redoes only the one it was in.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "data/loader.h"
#include "distill/topk_codec.h"
#include "tokenizer/tokenizer.h"

namespace retort {

class MappedFile;

// What the cache holds targets for; a student run computes its own and must match.
struct TeacherCacheIdentity {
  std::string teacher;              // as the recipe named it (recorded, not compared)
  std::string teacher_fingerprint;  // architecture, sizes and a hash of its config (recorded)
  std::string teacher_dtype;
  std::string tokenizer_hash;  // of the id -> token table
  int64_t vocab_size = 0;      // the tokenizer's: targets range over these ids
  std::string data_hash;       // of every sequence's ids and labels, train then validation
  std::string chat_template;   // the template's name ("" for text data)
  int64_t max_seq_len = 0;
  int64_t train_sequences = 0;
  int64_t validation_sequences = 0;
};

struct TeacherCacheFormat {
  int64_t top_k = 64;
  LogProbEncoding encoding = LogProbEncoding::kQ16;
  int64_t shard_sequences = 512;
  int zstd_level = 6;
};

std::string tokenizer_hash(const Tokenizer& tokenizer);
// Train sequences then validation sequences, in the numbering Batch::sequence_ids uses.
std::string sequences_hash(const std::vector<data::SequenceRef>& train, const std::vector<data::SequenceRef>& validation);
// The hash written into every shard header: identity and format together.
uint64_t cache_identity_hash(const TeacherCacheIdentity& identity, const TeacherCacheFormat& format);

std::string shard_file_name(int64_t shard);  // shard-00000.rtkc

// One sequence's compressed block, as the writer hands it over.
struct EncodedSequence {
  std::string frame;
  uint32_t raw_bytes = 0;
  uint32_t tokens = 0;
};
// Writes a shard atomically.
void write_cache_shard(const std::string& path, uint64_t identity_hash, const TeacherCacheFormat& format,
                       int64_t first_sequence, const std::vector<EncodedSequence>& sequences);

// What a shard's header says (the frames are not read).
struct CacheShardInfo {
  uint64_t identity_hash = 0;
  int64_t first_sequence = 0;
  int64_t sequences = 0;
  int64_t tokens = 0;
  int64_t bytes = 0;  // the whole file
};
// nullopt when `path` is missing or torn; bad_input when it is a shard of another cache.
std::optional<CacheShardInfo> read_cache_shard_info(const std::string& path, uint64_t expected_identity);

// Writes cache.json (atomically) once every shard is there.
void write_cache_manifest(const std::string& dir, const TeacherCacheIdentity& identity, const TeacherCacheFormat& format,
                          const std::vector<CacheShardInfo>& shards, double seconds);

class TeacherCache {
 public:
  // Reads DIR/cache.json and maps the shards; bad_input when the cache is incomplete or damaged.
  static std::shared_ptr<const TeacherCache> open(const std::string& dir);
  ~TeacherCache();

  const TeacherCacheIdentity& identity() const { return identity_; }
  const TeacherCacheFormat& format() const { return format_; }
  const std::string& dir() const { return dir_; }
  int64_t tokens() const { return tokens_; }
  int64_t bytes() const { return bytes_; }

  // bad_input naming each field where `expected` (this run's data and tokenizer) differs.
  void check_matches(const TeacherCacheIdentity& expected) const;

  TopkBlock sequence(int64_t id) const;
  // The blocks of a batch's rows (Batch::sequence_ids), concatenated in the order counted tokens
  // are numbered: row by row, and within a row sequence by sequence.
  TopkBlock batch(const std::vector<std::vector<int64_t>>& sequence_ids) const;

 private:
  struct Entry {
    const uint8_t* frame = nullptr;
    uint32_t frame_bytes = 0;
    uint32_t raw_bytes = 0;
    uint32_t tokens = 0;
    int32_t shard = 0;
  };
  TeacherCache() = default;

  std::string dir_;
  TeacherCacheIdentity identity_;
  TeacherCacheFormat format_;
  std::vector<std::shared_ptr<const MappedFile>> shards_;
  std::vector<Entry> entries_;
  int64_t tokens_ = 0;
  int64_t bytes_ = 0;
};

}  // namespace retort
