// Reader for GGUF v2/v3 files (metadata, tensor infos, memory-mapped tensor data), checking
// what ggml's gguf.cpp checks (docs/formats.md §3.1-3.3); every problem is a bad_input naming the file.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <variant>
#include <vector>

#include "io/gguf_dequant.h"

namespace retort {

class MappedFile;

// The ids of gguf.h's enum gguf_type (docs/formats.md §3.1).
enum class GgufValueType : uint32_t {
  kUint8 = 0,
  kInt8 = 1,
  kUint16 = 2,
  kInt16 = 3,
  kUint32 = 4,
  kInt32 = 5,
  kFloat32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kUint64 = 10,
  kInt64 = 11,
  kFloat64 = 12,
};

// "uint32", "string", "array", ... (the names gguf-py prints, lower-case).
const char* gguf_value_type_name(GgufValueType type);

// The alternatives are ordered so that data.index() is the element type id. Slot 9 (arrays of
// arrays) is never filled: nested arrays are rejected when reading, as ggml does.
struct GgufArray {
  std::variant<std::vector<uint8_t>, std::vector<int8_t>, std::vector<uint16_t>,
               std::vector<int16_t>, std::vector<uint32_t>, std::vector<int32_t>,
               std::vector<float>, std::vector<bool>, std::vector<std::string>, std::monostate,
               std::vector<uint64_t>, std::vector<int64_t>, std::vector<double>>
      data;
  GgufValueType element_type() const { return static_cast<GgufValueType>(data.index()); }
  size_t size() const;
};

// One metadata value; data.index() is its type id.
struct GgufValue {
  std::variant<uint8_t, int8_t, uint16_t, int16_t, uint32_t, int32_t, float, bool, std::string,
               GgufArray, uint64_t, int64_t, double>
      data;
  GgufValueType type() const { return static_cast<GgufValueType>(data.index()); }
};

struct GgufTensorInfo {
  std::string name;
  std::vector<int64_t> ne;  // GGUF dimension order: ne[0] is the contiguous one
  GgmlType type = GgmlType::F32;
  uint64_t offset = 0;   // from the start of the data section
  uint64_t n_bytes = 0;  // without the alignment padding
  int64_t n_elements() const;
  std::vector<int64_t> torch_shape() const;  // ne reversed
};

class GgufFile {
 public:
  // Maps and validates the whole header; tensor data stays in the mapping until loaded.
  static std::shared_ptr<GgufFile> open(const std::string& path);

  const std::string& path() const { return path_; }
  uint32_t version() const { return version_; }
  uint32_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }  // file offset of the data section

  // Metadata keys in file order; nullptr when the key is missing.
  const std::vector<std::string>& keys() const { return keys_; }
  const GgufValue* find(const std::string& key) const;

  // Typed getters: get_* throw bad_input naming the key when it is missing or has another
  // type; find_* return nullopt when it is missing and throw on another type. Integer getters
  // accept any integer type whose value fits; f32 getters accept float32 and float64.
  std::string get_string(const std::string& key) const;
  std::optional<std::string> find_string(const std::string& key) const;
  uint32_t get_u32(const std::string& key) const;
  std::optional<uint32_t> find_u32(const std::string& key) const;
  uint64_t get_u64(const std::string& key) const;
  std::optional<uint64_t> find_u64(const std::string& key) const;
  int64_t get_i64(const std::string& key) const;
  std::optional<int64_t> find_i64(const std::string& key) const;
  float get_f32(const std::string& key) const;
  std::optional<float> find_f32(const std::string& key) const;
  bool get_bool(const std::string& key) const;
  std::optional<bool> find_bool(const std::string& key) const;
  // Arrays. A vocabulary is large, so string arrays are returned by reference (pointer for
  // find_*; it lives as long as this GgufFile).
  const std::vector<std::string>& get_string_array(const std::string& key) const;
  const std::vector<std::string>* find_string_array(const std::string& key) const;
  std::vector<float> get_f32_array(const std::string& key) const;
  std::optional<std::vector<float>> find_f32_array(const std::string& key) const;
  std::vector<int32_t> get_i32_array(const std::string& key) const;
  std::optional<std::vector<int32_t>> find_i32_array(const std::string& key) const;

  // Tensor infos in file order; nullptr when the name is missing.
  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const GgufTensorInfo* find_tensor(const std::string& name) const;
  // The tensor's bytes inside the mapping (n_bytes of them; no alignment guarantee beyond
  // alignment()). Valid while this GgufFile lives.
  const uint8_t* tensor_data(const GgufTensorInfo& info) const;

  // The tensor dequantized to float32 in PyTorch shape order (ne reversed), contiguous, on
  // CPU, owning its memory. Throws bad_input naming the tensor for a missing name or a type
  // that cannot be dequantized.
  at::Tensor load_float(const std::string& name) const;

 private:
  GgufFile() = default;
  friend class GgufParser;

  std::string path_;
  std::shared_ptr<const MappedFile> file_;
  uint32_t version_ = 0;
  uint32_t alignment_ = 32;
  uint64_t data_offset_ = 0;
  std::vector<std::string> keys_;
  std::unordered_map<std::string, GgufValue> values_;
  std::vector<GgufTensorInfo> tensors_;
  std::unordered_map<std::string, size_t> tensor_index_;
};

}  // namespace retort
