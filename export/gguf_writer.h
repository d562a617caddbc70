// GGUF v3 writer as a state machine: metadata -> tensor infos -> tensor data -> commit. Each
// step refuses to run out of order, and everything ggml's reader would reject (duplicate keys or
// tensor names, names of 64 bytes or more, rows that are not whole blocks, nested arrays, a bad
// alignment) is refused here, naming the key or tensor. The file appears atomically.
// Spec: ggml docs/gguf.md and src/gguf.cpp (docs/formats.md §3.1-3.3).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_set>
#include <vector>

#include "io/atomic_file.h"
#include "io/gguf.h"

namespace retort {

class GgufWriter {
 public:
  explicit GgufWriter(std::string path, uint32_t alignment = 32);

  // Metadata (state: metadata). The typed setters use the value types llama.cpp checks.
  void set(const std::string& key, GgufValue value);
  void set_string(const std::string& key, const std::string& value) { set(key, GgufValue{value}); }
  void set_u32(const std::string& key, uint32_t value) { set(key, GgufValue{value}); }
  void set_i32(const std::string& key, int32_t value) { set(key, GgufValue{value}); }
  void set_f32(const std::string& key, float value) { set(key, GgufValue{value}); }
  void set_bool(const std::string& key, bool value) { set(key, GgufValue{value}); }
  bool has_key(const std::string& key) const;

  // Tensor infos (state: metadata or tensor infos). `ne` in GGUF order (ne[0] contiguous).
  void add_tensor(const std::string& name, const std::vector<int64_t>& ne, GgmlType type);
  size_t tensor_count() const { return tensors_.size(); }

  // Data (state: tensor infos or data): tensors in the order they were added, each exactly its
  // size in bytes. The first call writes the header.
  void write_tensor_data(const std::string& name, const void* data, uint64_t n_bytes);

  // Checks every tensor was written, then renames the file into place.
  void commit();

  const std::string& path() const { return path_; }
  uint64_t bytes_written() const;

 private:
  enum class State { kMetadata, kTensorInfos, kData, kDone };
  struct TensorEntry {
    std::string name;
    std::vector<int64_t> ne;
    GgmlType type;
    uint64_t offset;
    uint64_t n_bytes;
  };
  void require(State allowed, State also, const char* step) const;
  void write_header();

  std::string path_;
  uint32_t alignment_;
  State state_ = State::kMetadata;
  std::vector<std::pair<std::string, GgufValue>> metadata_;
  std::unordered_set<std::string> keys_;
  std::vector<TensorEntry> tensors_;
  std::unordered_set<std::string> tensor_names_;
  uint64_t data_size_ = 0;  // running offset of the next tensor
  size_t next_tensor_ = 0;
  std::unique_ptr<AtomicFile> file_;
};

}  // namespace retort
