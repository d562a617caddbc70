// safetensors reading (memory-mapped, validated like the reference tensor.rs) and
// writing (8-aligned header, {"format":"pt"}, sharding with an index, atomic).
// Spec: huggingface/safetensors README; docs/formats.md §1.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "io/mapped_file.h"

namespace retort {

struct SafetensorsTensorInfo {
  std::string name;
  std::string dtype;            // the file's dtype string, e.g. "BF16"
  std::vector<int64_t> shape;
  uint64_t begin = 0;           // offsets into the byte buffer (after the header)
  uint64_t end = 0;
};

// at::ScalarType for a safetensors dtype string; nullopt for dtypes LibTorch cannot hold
// (F4, F6_*) or unknown strings.
std::optional<at::ScalarType> scalar_type_from_safetensors(const std::string& dtype);
std::string safetensors_dtype_name(at::ScalarType type);  // throws for unsupported types

class SafetensorsFile {
 public:
  static std::shared_ptr<SafetensorsFile> open(const std::string& path);

  const std::string& path() const { return file_->path(); }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const std::vector<SafetensorsTensorInfo>& tensors() const { return tensors_; }  // file order
  const SafetensorsTensorInfo* find(const std::string& name) const;

  // A CPU tensor over the mapped bytes when they are aligned for the dtype (no copy; it keeps
  // the file mapped while alive), otherwise a copy. Read-only in spirit: do not write to it.
  at::Tensor view(const std::string& name) const;
  // An owning, contiguous copy, converted to `dtype` when given.
  at::Tensor load(const std::string& name, std::optional<at::ScalarType> dtype = std::nullopt) const;

 private:
  SafetensorsFile() = default;
  std::shared_ptr<const MappedFile> file_;
  uint64_t data_start_ = 0;
  std::map<std::string, std::string> metadata_;
  std::vector<SafetensorsTensorInfo> tensors_;
  std::map<std::string, size_t> index_;
};

// A whole HF checkpoint: a single model.safetensors, or shards through
// model.safetensors.index.json. Accepts a directory or a file path.
class SafetensorsCheckpoint {
 public:
  static SafetensorsCheckpoint open(const std::string& path);

  std::vector<std::string> names() const;
  bool contains(const std::string& name) const { return owner_.count(name) > 0; }
  const SafetensorsTensorInfo& info(const std::string& name) const;
  const SafetensorsFile& file_of(const std::string& name) const;
  at::Tensor load(const std::string& name, std::optional<at::ScalarType> dtype = std::nullopt) const;

 private:
  std::vector<std::shared_ptr<SafetensorsFile>> files_;
  std::map<std::string, size_t> owner_;  // tensor name -> index into files_
};

// Writes tensors (any device, any supported dtype) in the given order to one file,
// atomically. Each tensor is copied to CPU (and converted to `dtype` when given) one at a time
// while writing, so writing never holds a second copy of the model.
void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata = {{"format", "pt"}},
                       std::optional<at::ScalarType> dtype = std::nullopt);

// HF-style sharding into `directory`: model.safetensors when everything fits in
// `max_shard_bytes`, else model-0000i-of-0000n.safetensors plus model.safetensors.index.json
// (a new shard starts when the next tensor would exceed the limit; an oversize tensor gets
// its own shard). Returns the file names written.
std::vector<std::string> write_sharded_safetensors(
    const std::string& directory, const std::vector<std::pair<std::string, at::Tensor>>& tensors,
    uint64_t max_shard_bytes, const std::string& stem = "model", std::optional<at::ScalarType> dtype = std::nullopt);

// The same, streamed: tensors given by name and shape, each loaded by `load` just before it is
// written and stored as `dtype`, so peak memory is one tensor, not the model.
using TensorLoader = std::function<at::Tensor(const std::string& name)>;
std::vector<std::string> write_sharded_safetensors(
    const std::string& directory, const std::vector<std::pair<std::string, std::vector<int64_t>>>& shapes,
    const TensorLoader& load, uint64_t max_shard_bytes, const std::string& stem, at::ScalarType dtype);

}  // namespace retort
