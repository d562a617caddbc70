// safetensors reader and writer; validation follows the reference tensor.rs checks.
#include "io/safetensors.h"

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <set>

#include "io/atomic_file.h"
#include "io/error.h"
#include "io/text.h"

namespace retort {
namespace {

constexpr uint64_t kMaxHeaderBytes = 100'000'000;  // the reference reader's limit

struct DtypeEntry {
  const char* name;
  int bits;
  std::optional<at::ScalarType> type;
};

const std::vector<DtypeEntry>& dtype_table() {
  static const std::vector<DtypeEntry> table = {
      {"BOOL", 8, at::kBool},
      {"U8", 8, at::kByte},
      {"I8", 8, at::kChar},
      {"F8_E5M2", 8, at::kFloat8_e5m2},
      {"F8_E4M3", 8, at::kFloat8_e4m3fn},
      {"F8_E8M0", 8, at::kFloat8_e8m0fnu},
      {"F8_E4M3FNUZ", 8, at::kFloat8_e4m3fnuz},
      {"F8_E5M2FNUZ", 8, at::kFloat8_e5m2fnuz},
      {"I16", 16, at::kShort},
      {"U16", 16, at::kUInt16},
      {"F16", 16, at::kHalf},
      {"BF16", 16, at::kBFloat16},
      {"I32", 32, at::kInt},
      {"U32", 32, at::kUInt32},
      {"F32", 32, at::kFloat},
      {"I64", 64, at::kLong},
      {"U64", 64, at::kUInt64},
      {"F64", 64, at::kDouble},
      {"C64", 64, at::kComplexFloat},
      {"F4", 4, std::nullopt},
      {"F6_E2M3", 6, std::nullopt},
      {"F6_E3M2", 6, std::nullopt},
  };
  return table;
}

const DtypeEntry* find_dtype(const std::string& name) {
  for (const DtypeEntry& entry : dtype_table()) {
    if (name == entry.name) return &entry;
  }
  return nullptr;
}

uint64_t read_u64_le(const uint8_t* bytes) {
  uint64_t value = 0;
  for (int i = 7; i >= 0; --i) value = (value << 8) | bytes[i];
  return value;
}

// Parses the JSON header, refusing duplicate top-level keys (the JSON library would keep
// the last one silently).
nlohmann::json parse_header(const std::string& path, const char* begin, const char* end) {
  if (begin == end || *begin != '{') throw bad_input("header does not start with '{'").file(path);
  std::set<std::string> seen;
  std::string duplicate;
  auto callback = [&](int depth, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
    if (event == nlohmann::json::parse_event_t::key && depth == 1) {
      const std::string key = parsed.get<std::string>();
      if (!seen.insert(key).second && duplicate.empty()) duplicate = key;
    }
    return true;
  };
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(begin, end, callback);
  } catch (const nlohmann::json::exception& error) {
    throw bad_input(std::string("header is not valid JSON: ") + error.what()).file(path);
  }
  if (!duplicate.empty()) throw bad_input("duplicate tensor name in header").file(path).tensor(duplicate);
  if (!header.is_object()) throw bad_input("header is not a JSON object").file(path);
  return header;
}

uint64_t json_u64(const nlohmann::json& value, const std::string& path, const std::string& name,
                  const char* field) {
  if (!value.is_number_unsigned() && !(value.is_number_integer() && value.get<int64_t>() >= 0)) {
    throw bad_input(std::string("'") + field + "' must hold non-negative integers").file(path).tensor(name);
  }
  return value.get<uint64_t>();
}

SafetensorsTensorInfo parse_entry(const std::string& path, const std::string& name, const nlohmann::json& entry) {
  if (!entry.is_object()) throw bad_input("entry is not an object").file(path).tensor(name);
  for (const char* field : {"dtype", "shape", "data_offsets"}) {
    if (!entry.contains(field)) throw bad_input(std::string("missing '") + field + "'").file(path).tensor(name);
  }
  SafetensorsTensorInfo info;
  info.name = name;
  if (!entry["dtype"].is_string()) throw bad_input("'dtype' is not a string").file(path).tensor(name);
  info.dtype = entry["dtype"].get<std::string>();
  const DtypeEntry* dtype = find_dtype(info.dtype);
  if (dtype == nullptr) throw bad_input("unknown dtype '" + info.dtype + "'").file(path).tensor(name);
  const auto& shape = entry["shape"];
  const auto& offsets = entry["data_offsets"];
  if (!shape.is_array()) throw bad_input("'shape' is not an array").file(path).tensor(name);
  if (!offsets.is_array() || offsets.size() != 2) {
    throw bad_input("'data_offsets' must be [begin, end]").file(path).tensor(name);
  }
  unsigned __int128 elements = 1;
  for (const auto& dim : shape) {
    const uint64_t size = json_u64(dim, path, name, "shape");
    elements *= size;
    if (elements > (static_cast<unsigned __int128>(1) << 64)) {
      throw bad_input("shape is too large").file(path).tensor(name);
    }
    info.shape.push_back(static_cast<int64_t>(size));
  }
  info.begin = json_u64(offsets[0], path, name, "data_offsets");
  info.end = json_u64(offsets[1], path, name, "data_offsets");
  if (info.end < info.begin) throw bad_input("data_offsets end is before begin").file(path).tensor(name);
  const unsigned __int128 bits = elements * static_cast<unsigned>(dtype->bits);
  if (bits % 8 != 0) {
    throw bad_input("size in bits is not a multiple of 8 for dtype " + info.dtype).file(path).tensor(name);
  }
  if (bits / 8 != info.end - info.begin) {
    throw bad_input("shape " + shape_text(info.shape) + " of " + info.dtype + " needs " +
                    std::to_string(static_cast<uint64_t>(bits / 8)) + " bytes but data_offsets span " +
                    std::to_string(info.end - info.begin))
        .file(path)
        .tensor(name);
  }
  return info;
}

void check_layout(const std::string& path, std::vector<SafetensorsTensorInfo> sorted, uint64_t buffer_size) {
  std::sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t expected = 0;
  for (const SafetensorsTensorInfo& info : sorted) {
    if (info.begin < expected) {
      throw bad_input("data_offsets overlap the previous tensor's data").file(path).tensor(info.name);
    }
    if (info.begin > expected) {
      throw bad_input("gap of " + std::to_string(info.begin - expected) + " bytes before this tensor's data")
          .file(path)
          .tensor(info.name);
    }
    expected = info.end;
  }
  if (expected > buffer_size) {
    const std::string last = sorted.empty() ? "" : sorted.back().name;
    throw bad_input("tensor data runs past the end of the file (file truncated?): needs " +
                    std::to_string(expected) + " data bytes, file has " + std::to_string(buffer_size))
        .file(path)
        .tensor(last);
  }
  if (expected < buffer_size) {
    throw bad_input(std::to_string(buffer_size - expected) + " trailing bytes after the last tensor").file(path);
  }
}

}  // namespace

std::optional<at::ScalarType> scalar_type_from_safetensors(const std::string& dtype) {
  const DtypeEntry* entry = find_dtype(dtype);
  return entry ? entry->type : std::nullopt;
}

std::string safetensors_dtype_name(at::ScalarType type) {
  for (const DtypeEntry& entry : dtype_table()) {
    if (entry.type == type) return entry.name;
  }
  throw bad_input(std::string("dtype ") + c10::toString(type) + " cannot be stored in safetensors");
}

std::shared_ptr<SafetensorsFile> SafetensorsFile::open(const std::string& path) {
  std::shared_ptr<SafetensorsFile> result(new SafetensorsFile());
  result->file_ = MappedFile::open(path);
  const MappedFile& file = *result->file_;
  if (file.size() < 8) throw bad_input("file is too small to be safetensors (truncated?)").file(path);
  const uint64_t header_size = read_u64_le(file.data());
  if (header_size > kMaxHeaderBytes) {
    throw bad_input("header length " + std::to_string(header_size) + " exceeds the 100 MB limit").file(path);
  }
  if (8 + header_size > file.size()) {
    throw bad_input("header length " + std::to_string(header_size) + " runs past the end of the file (" +
                    std::to_string(file.size()) + " bytes)")
        .file(path);
  }
  const char* header_begin = reinterpret_cast<const char*>(file.data() + 8);
  const nlohmann::json header = parse_header(path, header_begin, header_begin + header_size);
  result->data_start_ = 8 + header_size;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) throw bad_input("__metadata__ is not an object").file(path);
      for (const auto& [key, value] : entry.items()) {
        if (!value.is_string()) throw bad_input("__metadata__ values must be strings").file(path).key(key);
        result->metadata_[key] = value.get<std::string>();
      }
      continue;
    }
    result->tensors_.push_back(parse_entry(path, name, entry));
  }
  check_layout(path, result->tensors_, file.size() - result->data_start_);
  for (size_t i = 0; i < result->tensors_.size(); ++i) result->index_[result->tensors_[i].name] = i;
  return result;
}

const SafetensorsTensorInfo* SafetensorsFile::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

at::Tensor SafetensorsFile::view(const std::string& name) const {
  const SafetensorsTensorInfo* info = find(name);
  if (info == nullptr) throw bad_input("no such tensor").file(path()).tensor(name);
  const std::optional<at::ScalarType> type = scalar_type_from_safetensors(info->dtype);
  if (!type) throw bad_input("dtype " + info->dtype + " is not supported by LibTorch").file(path()).tensor(name);
  const uint8_t* bytes = file_->data() + data_start_ + info->begin;
  const auto options = at::TensorOptions().dtype(*type).device(at::kCPU);
  const size_t element_size = c10::elementSize(*type);
  if (info->end == info->begin || reinterpret_cast<uintptr_t>(bytes) % element_size != 0) {
    at::Tensor copy = at::empty(info->shape, options);
    if (info->end > info->begin) std::memcpy(copy.data_ptr(), bytes, info->end - info->begin);
    return copy;
  }
  std::shared_ptr<const MappedFile> keep_alive = file_;
  return at::from_blob(const_cast<uint8_t*>(bytes), info->shape, [keep_alive](void*) {}, options);
}

at::Tensor SafetensorsFile::load(const std::string& name, std::optional<at::ScalarType> dtype) const {
  at::Tensor mapped = view(name);
  at::Tensor copy = mapped.to(dtype.value_or(mapped.scalar_type()), /*non_blocking=*/false, /*copy=*/true).contiguous();
  const SafetensorsTensorInfo* info = find(name);
  file_->release(file_->data() + data_start_ + info->begin, info->end - info->begin);
  return copy;
}

SafetensorsCheckpoint SafetensorsCheckpoint::open(const std::string& path) {
  namespace fs = std::filesystem;
  SafetensorsCheckpoint checkpoint;
  auto add_file = [&](const std::string& file_path) {
    checkpoint.files_.push_back(SafetensorsFile::open(file_path));
    const size_t index = checkpoint.files_.size() - 1;
    for (const auto& info : checkpoint.files_.back()->tensors()) {
      if (!checkpoint.owner_.emplace(info.name, index).second) {
        throw bad_input("tensor appears in more than one shard").file(file_path).tensor(info.name);
      }
    }
  };
  if (!fs::is_directory(path)) {
    add_file(path);
    return checkpoint;
  }
  const fs::path index_path = fs::path(path) / "model.safetensors.index.json";
  if (!fs::exists(index_path)) {
    const fs::path single = fs::path(path) / "model.safetensors";
    if (!fs::exists(single)) {
      throw bad_input("no model.safetensors or model.safetensors.index.json in this directory").file(path);
    }
    add_file(single.string());
    return checkpoint;
  }
  nlohmann::json index;
  try {
    index = nlohmann::json::parse(read_text_file(index_path.string()));
  } catch (const nlohmann::json::exception& error) {
    throw bad_input(std::string("invalid JSON: ") + error.what()).file(index_path.string());
  }
  if (!index.contains("weight_map") || !index["weight_map"].is_object()) {
    throw bad_input("missing object 'weight_map'").file(index_path.string()).key("weight_map");
  }
  std::set<std::string> shard_names;
  for (const auto& [tensor, shard] : index["weight_map"].items()) {
    if (!shard.is_string()) throw bad_input("shard name is not a string").file(index_path.string()).tensor(tensor);
    const std::string shard_name = shard.get<std::string>();
    if (shard_name.find('/') != std::string::npos) {
      throw bad_input("shard name must be a file in the same directory").file(index_path.string()).tensor(tensor);
    }
    shard_names.insert(shard_name);
  }
  for (const std::string& shard : shard_names) add_file((fs::path(path) / shard).string());
  for (const auto& [tensor, shard] : index["weight_map"].items()) {
    auto it = checkpoint.owner_.find(tensor);
    const std::string expected = (fs::path(path) / shard.get<std::string>()).string();
    if (it == checkpoint.owner_.end() || checkpoint.files_[it->second]->path() != expected) {
      throw bad_input("the index maps this tensor to " + shard.get<std::string>() + " but that shard lacks it")
          .file(index_path.string())
          .tensor(tensor);
    }
  }
  if (checkpoint.owner_.size() != index["weight_map"].size()) {
    for (const auto& [tensor, owner] : checkpoint.owner_) {
      if (!index["weight_map"].contains(tensor)) {
        throw bad_input("tensor is in a shard but not in the index").file(index_path.string()).tensor(tensor);
      }
    }
  }
  return checkpoint;
}

std::vector<std::string> SafetensorsCheckpoint::names() const {
  std::vector<std::string> out;
  for (const auto& [name, owner] : owner_) out.push_back(name);
  return out;
}

const SafetensorsFile& SafetensorsCheckpoint::file_of(const std::string& name) const {
  auto it = owner_.find(name);
  if (it == owner_.end()) {
    const std::string where = files_.empty() ? "" : files_.front()->path();
    throw bad_input("missing tensor").file(where).tensor(name);
  }
  return *files_[it->second];
}

const SafetensorsTensorInfo& SafetensorsCheckpoint::info(const std::string& name) const {
  return *file_of(name).find(name);
}

at::Tensor SafetensorsCheckpoint::load(const std::string& name, std::optional<at::ScalarType> dtype) const {
  return file_of(name).load(name, dtype);
}

namespace {

// One tensor to write: its name, shape and stored dtype; the values come from a loader called
// just before the tensor is written.
struct PlannedSafetensor {
  std::string name;
  std::vector<int64_t> shape;
  at::ScalarType dtype;
  uint64_t bytes() const {
    uint64_t count = 1;
    for (const int64_t n : shape) count *= static_cast<uint64_t>(n);
    return count * c10::elementSize(dtype);
  }
};

void write_planned(const std::string& path, const std::vector<PlannedSafetensor>& tensors, const TensorLoader& load,
                   const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  std::set<std::string> names;
  for (const PlannedSafetensor& tensor : tensors) {
    if (!names.insert(tensor.name).second) throw internal_error("duplicate tensor name").file(path).tensor(tensor.name);
    header[tensor.name] = {{"dtype", safetensors_dtype_name(tensor.dtype)},
                           {"shape", tensor.shape},
                           {"data_offsets", {offset, offset + tensor.bytes()}}};
    offset += tensor.bytes();
  }
  std::string header_text = header.dump();
  header_text.append((8 - header_text.size() % 8) % 8, ' ');
  AtomicFile file(path);
  uint8_t size_bytes[8];
  for (int i = 0; i < 8; ++i) size_bytes[i] = static_cast<uint8_t>(header_text.size() >> (8 * i));
  file.write(size_bytes, 8);
  file.write(header_text);
  for (const PlannedSafetensor& tensor : tensors) {
    // One tensor at a time: loaded, converted and copied to CPU only while it is written.
    const at::Tensor host = load(tensor.name).detach().to(at::kCPU).to(tensor.dtype).contiguous();
    if (host.sizes().vec() != tensor.shape) throw internal_error("tensor changed shape while writing").tensor(tensor.name);
    file.write(host.data_ptr(), static_cast<size_t>(host.numel()) * host.element_size());
  }
  file.commit();
}

std::vector<std::string> write_planned_sharded(const std::string& directory,
                                               const std::vector<PlannedSafetensor>& tensors, const TensorLoader& load,
                                               uint64_t max_shard_bytes, const std::string& stem) {
  namespace fs = std::filesystem;
  std::vector<std::vector<size_t>> shards(1);
  uint64_t shard_bytes = 0, total_bytes = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const uint64_t bytes = tensors[i].bytes();
    if (!shards.back().empty() && shard_bytes + bytes > max_shard_bytes) {
      shards.emplace_back();
      shard_bytes = 0;
    }
    shards.back().push_back(i);
    shard_bytes += bytes;
    total_bytes += bytes;
  }
  fs::create_directories(directory);
  std::vector<std::string> written;
  if (shards.size() == 1) {
    written.push_back(stem + ".safetensors");
    write_planned((fs::path(directory) / written.back()).string(), tensors, load, {{"format", "pt"}});
    return written;
  }
  nlohmann::ordered_json weight_map = nlohmann::ordered_json::object();
  for (size_t s = 0; s < shards.size(); ++s) {
    char name[64];
    std::snprintf(name, sizeof(name), "-%05zu-of-%05zu.safetensors", s + 1, shards.size());
    written.push_back(stem + name);
    std::vector<PlannedSafetensor> shard_tensors;
    for (size_t index : shards[s]) {
      shard_tensors.push_back(tensors[index]);
      weight_map[tensors[index].name] = written.back();
    }
    write_planned((fs::path(directory) / written.back()).string(), shard_tensors, load, {{"format", "pt"}});
  }
  nlohmann::ordered_json index = {{"metadata", {{"total_size", total_bytes}}}, {"weight_map", weight_map}};
  write_file_atomic((fs::path(directory) / (stem + ".safetensors.index.json")).string(), index.dump(2) + "\n");
  return written;
}

std::vector<PlannedSafetensor> plan_in_memory(const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                                              std::optional<at::ScalarType> dtype, TensorLoader& load) {
  std::vector<PlannedSafetensor> planned;
  auto by_name = std::make_shared<std::map<std::string, at::Tensor>>();
  for (const auto& [name, tensor] : tensors) {
    planned.push_back({name, tensor.sizes().vec(), dtype.value_or(tensor.scalar_type())});
    by_name->emplace(name, tensor);
  }
  load = [by_name](const std::string& name) { return by_name->at(name); };
  return planned;
}

}  // namespace

void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata, std::optional<at::ScalarType> dtype) {
  TensorLoader load;
  const auto planned = plan_in_memory(tensors, dtype, load);
  write_planned(path, planned, load, metadata);
}

std::vector<std::string> write_sharded_safetensors(
    const std::string& directory, const std::vector<std::pair<std::string, at::Tensor>>& tensors,
    uint64_t max_shard_bytes, const std::string& stem, std::optional<at::ScalarType> dtype) {
  TensorLoader load;
  const auto planned = plan_in_memory(tensors, dtype, load);
  return write_planned_sharded(directory, planned, load, max_shard_bytes, stem);
}

std::vector<std::string> write_sharded_safetensors(
    const std::string& directory, const std::vector<std::pair<std::string, std::vector<int64_t>>>& shapes,
    const TensorLoader& load, uint64_t max_shard_bytes, const std::string& stem, at::ScalarType dtype) {
  std::vector<PlannedSafetensor> planned;
  for (const auto& [name, shape] : shapes) planned.push_back({name, shape, dtype});
  return write_planned_sharded(directory, planned, load, max_shard_bytes, stem);
}

}  // namespace retort
