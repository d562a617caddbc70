#include "distill/teacher_cache.h"

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "io/atomic_file.h"
#include "io/error.h"
#include "io/hash.h"
#include "io/mapped_file.h"

namespace retort {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::ordered_json;

constexpr char kMagic[8] = {'R', 'T', 'K', 'C', 'A', 'C', 'H', 'E'};
constexpr uint32_t kVersion = 1;
constexpr size_t kHeaderBytes = 8 + 4 + 4 + 8 + 8 + 8 + 8;
constexpr size_t kEntryBytes = 8 + 4 + 4 + 4 + 4;
constexpr const char* kManifest = "cache.json";

Json identity_json(const TeacherCacheIdentity& id) {
  return {{"teacher", id.teacher},
          {"teacher_fingerprint", id.teacher_fingerprint},
          {"teacher_dtype", id.teacher_dtype},
          {"tokenizer_hash", id.tokenizer_hash},
          {"vocab_size", id.vocab_size},
          {"data_hash", id.data_hash},
          {"chat_template", id.chat_template},
          {"max_seq_len", id.max_seq_len},
          {"train_sequences", id.train_sequences},
          {"validation_sequences", id.validation_sequences}};
}

TeacherCacheIdentity identity_from_json(const Json& j) {
  TeacherCacheIdentity id;
  id.teacher = j.at("teacher").get<std::string>();
  id.teacher_fingerprint = j.at("teacher_fingerprint").get<std::string>();
  id.teacher_dtype = j.at("teacher_dtype").get<std::string>();
  id.tokenizer_hash = j.at("tokenizer_hash").get<std::string>();
  id.vocab_size = j.at("vocab_size").get<int64_t>();
  id.data_hash = j.at("data_hash").get<std::string>();
  id.chat_template = j.at("chat_template").get<std::string>();
  id.max_seq_len = j.at("max_seq_len").get<int64_t>();
  id.train_sequences = j.at("train_sequences").get<int64_t>();
  id.validation_sequences = j.at("validation_sequences").get<int64_t>();
  return id;
}

template <typename T>
void put(std::string& out, T value) {
  out.append(reinterpret_cast<const char*>(&value), sizeof value);
}

template <typename T>
T get(const uint8_t*& in) {
  T value;
  std::memcpy(&value, in, sizeof value);
  in += sizeof value;
  return value;
}

}  // namespace

std::string tokenizer_hash(const Tokenizer& tokenizer) {
  ContentHash hash;
  const int64_t size = static_cast<int64_t>(tokenizer.vocab_size());
  hash.update_value(size);
  for (int64_t id = 0; id < size; ++id) hash.update(tokenizer.id_to_token(static_cast<TokenId>(id)));
  return hash.hex();
}

std::string sequences_hash(const std::vector<data::SequenceRef>& train, const std::vector<data::SequenceRef>& validation) {
  ContentHash hash;
  for (const auto* split : {&train, &validation}) {
    hash.update_value(static_cast<int64_t>(split->size()));
    for (const data::SequenceRef& ref : *split) {
      hash.update_value(ref.example).update_value(ref.part).update_value(ref.length).update_value(ref.content_hash);
    }
  }
  return hash.hex();
}

uint64_t cache_identity_hash(const TeacherCacheIdentity& identity, const TeacherCacheFormat& format) {
  ContentHash hash;
  hash.update(identity_json(identity).dump());
  hash.update_value(format.top_k).update_value(static_cast<int32_t>(format.encoding)).update_value(format.shard_sequences);
  return hash.digest();
}

std::string shard_file_name(int64_t shard) {
  char name[32];
  std::snprintf(name, sizeof name, "shard-%05lld.rtkc", static_cast<long long>(shard));
  return name;
}

void write_cache_shard(const std::string& path, uint64_t identity_hash, const TeacherCacheFormat& format,
                       int64_t first_sequence, const std::vector<EncodedSequence>& sequences) {
  std::string header(kMagic, sizeof kMagic);
  put(header, kVersion);
  put(header, static_cast<uint32_t>(format.encoding));
  put(header, identity_hash);
  put(header, first_sequence);
  put(header, static_cast<int64_t>(sequences.size()));
  put(header, format.top_k);
  uint64_t offset = kHeaderBytes + kEntryBytes * sequences.size();
  for (const EncodedSequence& sequence : sequences) {
    put(header, offset);
    put(header, static_cast<uint32_t>(sequence.frame.size()));
    put(header, sequence.raw_bytes);
    put(header, sequence.tokens);
    put(header, uint32_t{0});
    offset += sequence.frame.size();
  }
  AtomicFile file(path);
  file.write(header);
  for (const EncodedSequence& sequence : sequences) file.write(sequence.frame);
  file.commit();
}

std::optional<CacheShardInfo> read_cache_shard_info(const std::string& path, uint64_t expected_identity) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::string header(kHeaderBytes, '\0');
  if (!in.read(header.data(), static_cast<std::streamsize>(header.size()))) return std::nullopt;
  if (std::memcmp(header.data(), kMagic, sizeof kMagic) != 0) {
    throw bad_input("not a teacher cache shard; remove it or choose another cache directory").file(path);
  }
  const auto* p = reinterpret_cast<const uint8_t*>(header.data()) + sizeof kMagic;
  const uint32_t version = get<uint32_t>(p);
  get<uint32_t>(p);
  CacheShardInfo info;
  info.identity_hash = get<uint64_t>(p);
  info.first_sequence = get<int64_t>(p);
  info.sequences = get<int64_t>(p);
  if (version != kVersion || info.identity_hash != expected_identity) {
    throw bad_input("this shard belongs to a cache of another teacher, dataset, tokenizer or format; remove the "
                    "directory or set distill.teacher_cache to a new one")
        .file(path);
  }
  std::string entries(kEntryBytes * static_cast<size_t>(info.sequences), '\0');
  if (!in.read(entries.data(), static_cast<std::streamsize>(entries.size()))) return std::nullopt;
  const auto* e = reinterpret_cast<const uint8_t*>(entries.data());
  uint64_t end = kHeaderBytes + entries.size();
  for (int64_t i = 0; i < info.sequences; ++i) {
    const uint64_t offset = get<uint64_t>(e);
    const uint32_t frame = get<uint32_t>(e);
    get<uint32_t>(e);
    info.tokens += get<uint32_t>(e);
    get<uint32_t>(e);
    end = std::max<uint64_t>(end, offset + frame);
  }
  std::error_code ec;
  const uintmax_t size = fs::file_size(path, ec);
  if (ec || size != end) return std::nullopt;  // renamed into place whole, so this is damage
  info.bytes = static_cast<int64_t>(size);
  return info;
}

void write_cache_manifest(const std::string& dir, const TeacherCacheIdentity& identity, const TeacherCacheFormat& format,
                          const std::vector<CacheShardInfo>& shards, double seconds) {
  Json shard_list = Json::array();
  int64_t tokens = 0, bytes = 0;
  for (size_t s = 0; s < shards.size(); ++s) {
    shard_list.push_back({{"file", shard_file_name(static_cast<int64_t>(s))},
                          {"first_sequence", shards[s].first_sequence},
                          {"sequences", shards[s].sequences},
                          {"tokens", shards[s].tokens},
                          {"bytes", shards[s].bytes}});
    tokens += shards[s].tokens;
    bytes += shards[s].bytes;
  }
  Json manifest = {{"format", "retort-teacher-cache"},
                   {"version", kVersion},
                   {"identity", identity_json(identity)},
                   {"top_k", format.top_k},
                   {"log_probs", log_prob_encoding_name(format.encoding)},
                   {"shard_sequences", format.shard_sequences},
                   {"zstd_level", format.zstd_level},
                   {"tokens", tokens},
                   {"bytes", bytes},
                   {"bytes_per_token", tokens > 0 ? static_cast<double>(bytes) / static_cast<double>(tokens) : 0.0},
                   {"seconds", seconds},
                   {"shards", shard_list}};
  write_file_atomic((fs::path(dir) / kManifest).string(), manifest.dump(2) + "\n");
}

TeacherCache::~TeacherCache() = default;

std::shared_ptr<const TeacherCache> TeacherCache::open(const std::string& dir) {
  const std::string manifest_path = (fs::path(dir) / kManifest).string();
  if (!fs::exists(manifest_path)) {
    throw bad_input("no teacher cache here (cache.json is missing): run `retort cache-teacher RECIPE.yaml` first, "
                    "or let it finish")
        .file(dir)
        .key("distill.teacher_cache");
  }
  auto cache = std::shared_ptr<TeacherCache>(new TeacherCache());
  cache->dir_ = dir;
  Json manifest;
  try {
    manifest = Json::parse(read_text_file(manifest_path));
    if (manifest.at("format") != "retort-teacher-cache" || manifest.at("version") != kVersion) {
      throw bad_input("not a version-1 retort teacher cache").file(manifest_path);
    }
    cache->identity_ = identity_from_json(manifest.at("identity"));
    cache->format_.top_k = manifest.at("top_k").get<int64_t>();
    cache->format_.encoding = parse_log_prob_encoding(manifest.at("log_probs").get<std::string>());
    cache->format_.shard_sequences = manifest.at("shard_sequences").get<int64_t>();
    cache->format_.zstd_level = manifest.at("zstd_level").get<int>();
  } catch (const Json::exception& error) {
    throw bad_input(std::string("invalid cache manifest: ") + error.what()).file(manifest_path);
  }
  const int64_t total = cache->identity_.train_sequences + cache->identity_.validation_sequences;
  const uint64_t identity = cache_identity_hash(cache->identity_, cache->format_);
  for (const Json& shard : manifest.at("shards")) {
    const std::string path = (fs::path(dir) / shard.at("file").get<std::string>()).string();
    if (!read_cache_shard_info(path, identity)) throw bad_input("the cache shard is missing or damaged").file(path);
    auto file = MappedFile::open(path);
    const uint8_t* p = file->data() + sizeof kMagic + 8 + 8;
    const int64_t first = get<int64_t>(p), count = get<int64_t>(p);
    get<int64_t>(p);
    if (first != static_cast<int64_t>(cache->entries_.size())) throw bad_input("cache shards out of order").file(path);
    for (int64_t i = 0; i < count; ++i) {
      Entry entry;
      entry.frame = file->data() + get<uint64_t>(p);
      entry.frame_bytes = get<uint32_t>(p);
      entry.raw_bytes = get<uint32_t>(p);
      entry.tokens = get<uint32_t>(p);
      get<uint32_t>(p);
      entry.shard = static_cast<int32_t>(cache->shards_.size());
      cache->tokens_ += entry.tokens;
      cache->entries_.push_back(entry);
    }
    cache->bytes_ += static_cast<int64_t>(file->size());
    cache->shards_.push_back(std::move(file));
  }
  if (static_cast<int64_t>(cache->entries_.size()) != total) {
    throw bad_input("the cache holds " + std::to_string(cache->entries_.size()) + " sequences, its manifest " +
                    std::to_string(total))
        .file(manifest_path);
  }
  return cache;
}

void TeacherCache::check_matches(const TeacherCacheIdentity& expected) const {
  auto refuse = [&](const std::string& what, const std::string& cached, const std::string& wanted) {
    throw bad_input("the teacher cache was made for another " + what + " (cache: " + cached + ", this run: " + wanted +
                    "); rerun `retort cache-teacher` for this recipe into a new directory")
        .file(dir_)
        .key("distill.teacher_cache");
  };
  const TeacherCacheIdentity& have = identity_;
  if (have.tokenizer_hash != expected.tokenizer_hash || have.vocab_size != expected.vocab_size) {
    refuse("tokenizer", have.tokenizer_hash + ", " + std::to_string(have.vocab_size) + " tokens",
           expected.tokenizer_hash + ", " + std::to_string(expected.vocab_size) + " tokens");
  }
  if (have.chat_template != expected.chat_template) refuse("chat template", have.chat_template, expected.chat_template);
  if (have.max_seq_len != expected.max_seq_len) {
    refuse("data.max_seq_len", std::to_string(have.max_seq_len), std::to_string(expected.max_seq_len));
  }
  if (have.train_sequences != expected.train_sequences || have.validation_sequences != expected.validation_sequences ||
      have.data_hash != expected.data_hash) {
    refuse("dataset", std::to_string(have.train_sequences) + "+" + std::to_string(have.validation_sequences) +
                          " sequences, hash " + have.data_hash,
           std::to_string(expected.train_sequences) + "+" + std::to_string(expected.validation_sequences) +
               " sequences, hash " + expected.data_hash);
  }
}

TopkBlock TeacherCache::sequence(int64_t id) const {
  if (id < 0 || id >= static_cast<int64_t>(entries_.size())) {
    throw internal_error("sequence " + std::to_string(id) + " is not in the teacher cache").file(dir_);
  }
  const Entry& entry = entries_[static_cast<size_t>(id)];
  const std::string where = shards_[static_cast<size_t>(entry.shard)]->path() + " (sequence " + std::to_string(id) + ")";
  const std::string raw = zstd_decompress({reinterpret_cast<const char*>(entry.frame), entry.frame_bytes},
                                          entry.raw_bytes, where);
  return decode_topk_block(raw, entry.tokens, format_.top_k, format_.encoding, where);
}

TopkBlock TeacherCache::batch(const std::vector<std::vector<int64_t>>& sequence_ids) const {
  std::vector<at::Tensor> ids, log_probs, rest;
  for (const auto& row : sequence_ids) {
    for (int64_t id : row) {
      TopkBlock block = sequence(id);
      ids.push_back(block.ids);
      log_probs.push_back(block.log_probs);
      rest.push_back(block.rest_log_mass);
    }
  }
  if (ids.empty()) throw internal_error("a batch without sequence ids (the loader did not number them)");
  return {at::cat(ids), at::cat(log_probs), at::cat(rest)};
}

}  // namespace retort
