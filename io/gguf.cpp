// GGUF v2/v3 reader over a memory map. Reference: ggml src/gguf.cpp (gguf_init_from_file_impl)
// for the layout and the checks, gguf-py's GGUFReader for the same view from Python.
#include "io/gguf.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <numeric>
#include <type_traits>
#include <utility>

#include "io/error.h"
#include "io/mapped_file.h"
#include "io/text.h"

namespace retort {

// Fields are copied out of the mapping as-is: GGUF is little-endian, and so must the host be.
static_assert(std::endian::native == std::endian::little, "the GGUF reader assumes a little-endian host");

namespace {

constexpr char kMagic[4] = {'G', 'G', 'U', 'F'};
constexpr uint32_t kDefaultAlignment = 32;
constexpr const char* kAlignmentKey = "general.alignment";
constexpr size_t kMaxNameBytes = 64;  // GGML_MAX_NAME, which counts the terminating NUL
constexpr uint32_t kMaxDims = 4;      // GGML_MAX_DIMS
constexpr uint32_t kLastValueType = static_cast<uint32_t>(GgufValueType::kFloat64);

// The smallest encoding of one item, used to reject a count the rest of the file cannot hold
// before anything is allocated for it.
constexpr uint64_t kMinKvBytes = 8 + 4 + 1;                 // key length, value type, 1-byte value
constexpr uint64_t kMinTensorInfoBytes = 8 + 4 + 4 + 8;     // name length, n_dims, type, offset
// By value type id; a string is at least its u64 length, an array its element type and count.
constexpr uint64_t kValueTypeBytes[] = {1, 1, 2, 2, 4, 4, 4, 1, 8, 12, 8, 8, 8};

// Bounds-checked reads from the mapped bytes; every read that would pass the end throws.
class ByteCursor {
 public:
  ByteCursor(const uint8_t* data, size_t size) : data_(data), size_(size) {}

  uint64_t position() const { return position_; }
  uint64_t remaining() const { return size_ - position_; }

  const uint8_t* take(uint64_t n, const char* what) {
    if (n > remaining()) {
      throw bad_input("truncated file: " + std::string(what) + " at byte " +
                      std::to_string(position_) + " needs " + std::to_string(n) +
                      " bytes but only " + std::to_string(remaining()) + " remain");
    }
    const uint8_t* start = data_ + position_;
    position_ += n;
    return start;
  }

  template <class T>
  T read(const char* what) {
    T value;
    std::memcpy(&value, take(sizeof(T), what), sizeof(T));
    return value;
  }

  std::string read_string(const char* what) {
    const uint64_t start = position_;
    const uint64_t length = read<uint64_t>(what);
    if (length > remaining()) {
      throw bad_input(std::string(what) + " at byte " + std::to_string(start) + " has length " +
                      std::to_string(length) + ", larger than the rest of the file (" +
                      std::to_string(remaining()) + " bytes)");
    }
    return std::string(reinterpret_cast<const char*>(take(length, what)), length);
  }

  // A count read from the file is only trusted once its items could fit in what remains.
  void check_count(uint64_t count, uint64_t min_item_bytes, const char* what) const {
    if (count > remaining() / min_item_bytes) {
      throw bad_input(std::string(what) + " " + std::to_string(count) +
                      " is larger than the rest of the file can hold (" +
                      std::to_string(remaining()) + " bytes)");
    }
  }

 private:
  const uint8_t* data_;
  uint64_t size_;
  uint64_t position_ = 0;
};

GgufValueType read_value_type(ByteCursor& cursor, const char* what) {
  const uint32_t id = cursor.read<uint32_t>(what);
  if (id > kLastValueType) throw bad_input("unknown metadata value type " + std::to_string(id));
  return static_cast<GgufValueType>(id);
}

template <class T>
std::vector<T> read_numbers(ByteCursor& cursor, uint64_t count) {
  std::vector<T> values(count);
  const uint8_t* bytes = cursor.take(count * sizeof(T), "array data");
  if (count > 0) std::memcpy(values.data(), bytes, count * sizeof(T));  // data() is null when empty
  return values;
}

GgufArray read_array(ByteCursor& cursor) {
  const GgufValueType element = read_value_type(cursor, "array element type");
  if (element == GgufValueType::kArray) throw bad_input("nested arrays are not supported");
  const uint64_t count = cursor.read<uint64_t>("array length");
  cursor.check_count(count, kValueTypeBytes[static_cast<uint32_t>(element)], "array length");
  GgufArray array;
  auto& data = array.data;
  switch (element) {
    case GgufValueType::kUint8: data = read_numbers<uint8_t>(cursor, count); break;
    case GgufValueType::kInt8: data = read_numbers<int8_t>(cursor, count); break;
    case GgufValueType::kUint16: data = read_numbers<uint16_t>(cursor, count); break;
    case GgufValueType::kInt16: data = read_numbers<int16_t>(cursor, count); break;
    case GgufValueType::kUint32: data = read_numbers<uint32_t>(cursor, count); break;
    case GgufValueType::kInt32: data = read_numbers<int32_t>(cursor, count); break;
    case GgufValueType::kFloat32: data = read_numbers<float>(cursor, count); break;
    case GgufValueType::kUint64: data = read_numbers<uint64_t>(cursor, count); break;
    case GgufValueType::kInt64: data = read_numbers<int64_t>(cursor, count); break;
    case GgufValueType::kFloat64: data = read_numbers<double>(cursor, count); break;
    case GgufValueType::kBool: {
      const uint8_t* bytes = cursor.take(count, "array data");
      data = std::vector<bool>(bytes, bytes + count);
      break;
    }
    case GgufValueType::kString: {
      std::vector<std::string> strings;
      strings.reserve(count);
      for (uint64_t i = 0; i < count; ++i) strings.push_back(cursor.read_string("array string"));
      data = std::move(strings);
      break;
    }
    case GgufValueType::kArray: break;  // rejected above
  }
  return array;
}

template <class T>
GgufValue make_value(T value) {
  GgufValue result;
  result.data.emplace<T>(std::move(value));
  return result;
}

GgufValue read_value(ByteCursor& cursor, GgufValueType type) {
  switch (type) {
    case GgufValueType::kUint8: return make_value(cursor.read<uint8_t>("value"));
    case GgufValueType::kInt8: return make_value(cursor.read<int8_t>("value"));
    case GgufValueType::kUint16: return make_value(cursor.read<uint16_t>("value"));
    case GgufValueType::kInt16: return make_value(cursor.read<int16_t>("value"));
    case GgufValueType::kUint32: return make_value(cursor.read<uint32_t>("value"));
    case GgufValueType::kInt32: return make_value(cursor.read<int32_t>("value"));
    case GgufValueType::kFloat32: return make_value(cursor.read<float>("value"));
    case GgufValueType::kBool: return make_value(cursor.read<uint8_t>("value") != 0);
    case GgufValueType::kString: return make_value(cursor.read_string("string value"));
    case GgufValueType::kArray: return make_value(read_array(cursor));
    case GgufValueType::kUint64: return make_value(cursor.read<uint64_t>("value"));
    case GgufValueType::kInt64: return make_value(cursor.read<int64_t>("value"));
    case GgufValueType::kFloat64: return make_value(cursor.read<double>("value"));
  }
  throw internal_error("unhandled GGUF value type");
}

uint64_t align_up(uint64_t value, uint64_t alignment) {
  return (value + alignment - 1) / alignment * alignment;
}

}  // namespace

// Fills a GgufFile from its mapping in file order: header, metadata, tensor infos, data checks.
// Declared a friend of GgufFile so the file's fields stay private.
class GgufParser {
 public:
  explicit GgufParser(GgufFile& file) : file_(file), cursor_(file.file_->data(), file.file_->size()) {}

  void parse() {
    read_header();
    const uint64_t n_tensors = cursor_.read<uint64_t>("tensor count");
    const uint64_t n_kv = cursor_.read<uint64_t>("metadata count");
    read_metadata(n_kv);
    read_alignment();
    read_tensor_infos(n_tensors);
    file_.data_offset_ = align_up(cursor_.position(), file_.alignment_);
    check_tensor_data();
  }

 private:
  void read_header() {
    const uint8_t* magic = cursor_.take(sizeof(kMagic), "magic");
    if (std::memcmp(magic, kMagic, sizeof(kMagic)) != 0) {
      throw bad_input("not a GGUF file: bad magic (the file starts with " + hex_bytes(magic, 4) +
                      ", GGUF files with 47 47 55 46)");
    }
    const uint32_t version = cursor_.read<uint32_t>("version");
    // A big-endian file's version 2 or 3 reads as 0x02000000 or 0x03000000 here.
    if (version != 0 && (version & 0xFFFFu) == 0) {
      throw bad_input("big-endian GGUF files are not supported (the version field reads as " +
                      std::to_string(version) + "); convert it with gguf-py's `gguf-convert-endian FILE little`");
    }
    if (version < 2 || version > 3) {
      throw bad_input("GGUF version " + std::to_string(version) +
                      " is not supported; supported: versions 2 and 3");
    }
    file_.version_ = version;
  }

  void read_metadata(uint64_t n_kv) {
    cursor_.check_count(n_kv, kMinKvBytes, "metadata count");
    file_.keys_.reserve(n_kv);
    for (uint64_t i = 0; i < n_kv; ++i) {
      std::string key = cursor_.read_string("metadata key");
      try {
        if (key.empty()) throw bad_input("metadata entry " + std::to_string(i) + " has an empty key");
        if (file_.values_.count(key) != 0) throw bad_input("duplicate metadata key");
        const GgufValueType type = read_value_type(cursor_, "metadata value type");
        file_.values_.emplace(key, read_value(cursor_, type));
        file_.keys_.push_back(std::move(key));
      } catch (const Error& error) {
        throw error.with_defaults(ErrorContext{"", -1, key, ""});
      }
    }
  }

  void read_alignment() {
    file_.alignment_ = kDefaultAlignment;
    const GgufValue* value = file_.find(kAlignmentKey);
    if (value == nullptr) return;
    const uint32_t* alignment = std::get_if<uint32_t>(&value->data);
    if (alignment == nullptr) {
      throw bad_input(std::string("alignment must have type uint32, not ") +
                      gguf_value_type_name(value->type()))
          .key(kAlignmentKey);
    }
    if (*alignment == 0 || (*alignment & (*alignment - 1)) != 0) {
      throw bad_input("alignment " + std::to_string(*alignment) + " is not a power of two")
          .key(kAlignmentKey);
    }
    file_.alignment_ = *alignment;
  }

  void read_tensor_infos(uint64_t n_tensors) {
    cursor_.check_count(n_tensors, kMinTensorInfoBytes, "tensor count");
    file_.tensors_.reserve(n_tensors);
    for (uint64_t i = 0; i < n_tensors; ++i) {
      GgufTensorInfo info;
      info.name = cursor_.read_string("tensor name");
      try {
        read_tensor_info(info);
      } catch (const Error& error) {
        throw error.with_defaults(ErrorContext{"", -1, "", info.name});
      }
      file_.tensor_index_.emplace(info.name, file_.tensors_.size());
      file_.tensors_.push_back(std::move(info));
    }
  }

  // The fields after the name, with ggml's checks on each.
  void read_tensor_info(GgufTensorInfo& info) {
    if (info.name.size() >= kMaxNameBytes) {
      throw bad_input("tensor name is " + std::to_string(info.name.size()) +
                      " bytes long; ggml allows at most " + std::to_string(kMaxNameBytes - 1));
    }
    if (file_.tensor_index_.count(info.name) != 0) throw bad_input("duplicate tensor name");
    const uint32_t n_dims = cursor_.read<uint32_t>("number of dimensions");
    if (n_dims > kMaxDims) {
      throw bad_input("tensor has " + std::to_string(n_dims) + " dimensions; ggml allows at most " +
                      std::to_string(kMaxDims));
    }
    info.ne.resize(n_dims);
    for (uint32_t j = 0; j < n_dims; ++j) {
      info.ne[j] = cursor_.read<int64_t>("dimension");
      if (info.ne[j] < 0) throw bad_input("dimension " + std::to_string(j) + " is negative");
    }
    const uint32_t type_id = cursor_.read<uint32_t>("tensor type");
    const GgmlTypeInfo* type = find_ggml_type(type_id);
    if (type == nullptr) throw bad_input("unknown tensor type id " + std::to_string(type_id));
    info.type = type->type;
    info.offset = cursor_.read<uint64_t>("tensor data offset");

    const int64_t row = n_dims == 0 ? 1 : info.ne[0];
    if (row % type->block_size != 0) {
      throw bad_input("ne[0] = " + std::to_string(row) + " is not a multiple of the " +
                      type->name + " block size " + std::to_string(type->block_size));
    }
    int64_t n_elements = 1;
    for (const int64_t dim : info.ne) {
      if (__builtin_mul_overflow(n_elements, dim, &n_elements)) {
        throw bad_input("tensor has more than 2^63 elements");
      }
    }
    int64_t n_bytes = 0;
    if (__builtin_mul_overflow(n_elements / type->block_size, type->type_size, &n_bytes)) {
      throw bad_input("tensor data is larger than 2^63 bytes");
    }
    info.n_bytes = static_cast<uint64_t>(n_bytes);
  }

  // Each tensor's bytes must be aligned, inside the file and apart from every other tensor's.
  // (ggml also insists that tensors are packed in info order; any such file passes these checks.)
  void check_tensor_data() {
    const uint64_t file_size = file_.file_->size();
    const uint64_t data_size = file_size > file_.data_offset_ ? file_size - file_.data_offset_ : 0;
    for (const GgufTensorInfo& info : file_.tensors_) {
      if (info.offset % file_.alignment_ != 0) {
        throw bad_input("data offset " + std::to_string(info.offset) +
                        " is not a multiple of the alignment " + std::to_string(file_.alignment_))
            .tensor(info.name);
      }
      if (info.offset > data_size || info.n_bytes > data_size - info.offset) {
        throw bad_input("data (" + std::to_string(info.n_bytes) + " bytes at data offset " +
                        std::to_string(info.offset) + ") runs past the end of the file (the data " +
                        "section has " + std::to_string(data_size) + " bytes)")
            .tensor(info.name);
      }
    }
    std::vector<const GgufTensorInfo*> by_offset;
    for (const GgufTensorInfo& info : file_.tensors_) {
      if (info.n_bytes > 0) by_offset.push_back(&info);
    }
    std::sort(by_offset.begin(), by_offset.end(),
              [](const GgufTensorInfo* a, const GgufTensorInfo* b) { return a->offset < b->offset; });
    for (size_t i = 1; i < by_offset.size(); ++i) {
      const GgufTensorInfo& before = *by_offset[i - 1];
      if (before.offset + before.n_bytes > by_offset[i]->offset) {
        throw bad_input("data overlaps the data of tensor '" + before.name + "'")
            .tensor(by_offset[i]->name);
      }
    }
  }

  static std::string hex_bytes(const uint8_t* bytes, size_t n) {
    static constexpr char kDigits[] = "0123456789abcdef";
    std::string out;
    for (size_t i = 0; i < n; ++i) {
      if (i > 0) out += ' ';
      out += kDigits[bytes[i] >> 4];
      out += kDigits[bytes[i] & 0x0F];
    }
    return out;
  }

  GgufFile& file_;
  ByteCursor cursor_;
};

std::shared_ptr<GgufFile> GgufFile::open(const std::string& path) {
  std::shared_ptr<GgufFile> file(new GgufFile());
  file->path_ = path;
  file->file_ = MappedFile::open(path);
  try {
    GgufParser(*file).parse();
  } catch (const Error& error) {
    throw error.with_defaults(ErrorContext{path, -1, "", ""});
  }
  return file;
}

// ---- Values and tensor infos ----

const char* gguf_value_type_name(GgufValueType type) {
  static constexpr const char* kNames[] = {"uint8",   "int8",   "uint16", "int16", "uint32",
                                           "int32",   "float32", "bool",  "string", "array",
                                           "uint64",  "int64",  "float64"};
  const auto id = static_cast<uint32_t>(type);
  return id <= kLastValueType ? kNames[id] : "unknown";
}

size_t GgufArray::size() const {
  return std::visit(
      [](const auto& values) -> size_t {
        if constexpr (std::is_same_v<std::decay_t<decltype(values)>, std::monostate>) {
          return 0;
        } else {
          return values.size();
        }
      },
      data);
}

int64_t GgufTensorInfo::n_elements() const {
  return std::accumulate(ne.begin(), ne.end(), int64_t{1}, std::multiplies<int64_t>());
}

std::vector<int64_t> GgufTensorInfo::torch_shape() const { return {ne.rbegin(), ne.rend()}; }

// ---- Typed metadata getters ----

namespace {

std::string describe_type(const GgufValue& value) {
  if (const auto* array = std::get_if<GgufArray>(&value.data)) {
    return std::string("array of ") + gguf_value_type_name(array->element_type());
  }
  return gguf_value_type_name(value.type());
}

Error wrong_type(const GgufFile& file, const std::string& key, const GgufValue& value,
                 const std::string& expected) {
  return bad_input("has type " + describe_type(value) + ", expected " + expected)
      .key(key)
      .file(file.path());
}

[[noreturn]] void throw_missing_key(const GgufFile& file, const std::string& key) {
  std::string message = "missing metadata key";
  const std::string suggestion = nearest_match(key, file.keys());
  if (!suggestion.empty()) message += "; did you mean '" + suggestion + "'?";
  throw bad_input(message).key(key).file(file.path());
}

template <class T>
T required(std::optional<T> value, const GgufFile& file, const std::string& key) {
  if (!value) throw_missing_key(file, key);
  return std::move(*value);
}

// Any integer alternative, range-checked into Target; nullopt for non-integer alternatives.
template <class Target, class Source>
std::optional<Target> integer_as(const Source& value, const GgufFile& file, const std::string& key) {
  if constexpr (std::is_integral_v<Source> && !std::is_same_v<Source, bool>) {
    if (!std::in_range<Target>(value)) {
      throw bad_input("value " + std::to_string(value) + " is out of range for " +
                      (std::is_signed_v<Target> ? "int" : "uint") +
                      std::to_string(8 * sizeof(Target)))
          .key(key)
          .file(file.path());
    }
    return static_cast<Target>(value);
  } else {
    return std::nullopt;
  }
}

template <class Target>
std::optional<Target> find_integer(const GgufFile& file, const std::string& key) {
  const GgufValue* value = file.find(key);
  if (value == nullptr) return std::nullopt;
  std::optional<Target> result = std::visit(
      [&](const auto& v) { return integer_as<Target>(v, file, key); }, value->data);
  if (!result) {
    const std::string name = (std::is_signed_v<Target> ? "int" : "uint") + std::to_string(8 * sizeof(Target));
    throw wrong_type(file, key, *value, name + " (or another integer type whose value fits)");
  }
  return result;
}

// Converts every element of an integer array to Target, range-checked.
template <class Target>
std::optional<std::vector<Target>> integer_array_as(const GgufArray& array, const GgufFile& file,
                                                    const std::string& key) {
  return std::visit(
      [&](const auto& values) -> std::optional<std::vector<Target>> {
        using Values = std::decay_t<decltype(values)>;
        if constexpr (std::is_same_v<Values, std::monostate>) {
          return std::nullopt;
        } else {
          using Element = typename Values::value_type;
          if constexpr (!std::is_integral_v<Element> || std::is_same_v<Element, bool>) {
            return std::nullopt;
          } else {
            std::vector<Target> out;
            out.reserve(values.size());
            for (const Element& v : values) out.push_back(*integer_as<Target>(v, file, key));
            return out;
          }
        }
      },
      array.data);
}

}  // namespace

const GgufValue* GgufFile::find(const std::string& key) const {
  const auto it = values_.find(key);
  return it == values_.end() ? nullptr : &it->second;
}

std::optional<std::string> GgufFile::find_string(const std::string& key) const {
  const GgufValue* value = find(key);
  if (value == nullptr) return std::nullopt;
  const std::string* text = std::get_if<std::string>(&value->data);
  if (text == nullptr) throw wrong_type(*this, key, *value, "string");
  return *text;
}
std::string GgufFile::get_string(const std::string& key) const {
  return required(find_string(key), *this, key);
}

std::optional<uint32_t> GgufFile::find_u32(const std::string& key) const {
  return find_integer<uint32_t>(*this, key);
}
uint32_t GgufFile::get_u32(const std::string& key) const { return required(find_u32(key), *this, key); }

std::optional<uint64_t> GgufFile::find_u64(const std::string& key) const {
  return find_integer<uint64_t>(*this, key);
}
uint64_t GgufFile::get_u64(const std::string& key) const { return required(find_u64(key), *this, key); }

std::optional<int64_t> GgufFile::find_i64(const std::string& key) const {
  return find_integer<int64_t>(*this, key);
}
int64_t GgufFile::get_i64(const std::string& key) const { return required(find_i64(key), *this, key); }

std::optional<float> GgufFile::find_f32(const std::string& key) const {
  const GgufValue* value = find(key);
  if (value == nullptr) return std::nullopt;
  if (const float* f = std::get_if<float>(&value->data)) return *f;
  if (const double* d = std::get_if<double>(&value->data)) return static_cast<float>(*d);
  throw wrong_type(*this, key, *value, "float32 or float64");
}
float GgufFile::get_f32(const std::string& key) const { return required(find_f32(key), *this, key); }

std::optional<bool> GgufFile::find_bool(const std::string& key) const {
  const GgufValue* value = find(key);
  if (value == nullptr) return std::nullopt;
  const bool* flag = std::get_if<bool>(&value->data);
  if (flag == nullptr) throw wrong_type(*this, key, *value, "bool");
  return *flag;
}
bool GgufFile::get_bool(const std::string& key) const { return required(find_bool(key), *this, key); }

const std::vector<std::string>* GgufFile::find_string_array(const std::string& key) const {
  const GgufValue* value = find(key);
  if (value == nullptr) return nullptr;
  const GgufArray* array = std::get_if<GgufArray>(&value->data);
  const auto* strings = array ? std::get_if<std::vector<std::string>>(&array->data) : nullptr;
  if (strings == nullptr) throw wrong_type(*this, key, *value, "array of string");
  return strings;
}
const std::vector<std::string>& GgufFile::get_string_array(const std::string& key) const {
  const std::vector<std::string>* strings = find_string_array(key);
  if (strings == nullptr) throw_missing_key(*this, key);
  return *strings;
}

std::optional<std::vector<float>> GgufFile::find_f32_array(const std::string& key) const {
  const GgufValue* value = find(key);
  if (value == nullptr) return std::nullopt;
  if (const GgufArray* array = std::get_if<GgufArray>(&value->data)) {
    if (const auto* floats = std::get_if<std::vector<float>>(&array->data)) return *floats;
    if (const auto* doubles = std::get_if<std::vector<double>>(&array->data)) {
      return std::vector<float>(doubles->begin(), doubles->end());
    }
  }
  throw wrong_type(*this, key, *value, "array of float32 or float64");
}
std::vector<float> GgufFile::get_f32_array(const std::string& key) const {
  return required(find_f32_array(key), *this, key);
}

std::optional<std::vector<int32_t>> GgufFile::find_i32_array(const std::string& key) const {
  const GgufValue* value = find(key);
  if (value == nullptr) return std::nullopt;
  if (const GgufArray* array = std::get_if<GgufArray>(&value->data)) {
    if (auto values = integer_array_as<int32_t>(*array, *this, key)) return values;
  }
  throw wrong_type(*this, key, *value, "array of int32 (or of another integer type whose values fit)");
}
std::vector<int32_t> GgufFile::get_i32_array(const std::string& key) const {
  return required(find_i32_array(key), *this, key);
}

// ---- Tensors ----

const GgufTensorInfo* GgufFile::find_tensor(const std::string& name) const {
  const auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

const uint8_t* GgufFile::tensor_data(const GgufTensorInfo& info) const {
  // An empty tensor's offset may point past the mapping; it is never read.
  if (info.n_bytes == 0) return file_->data();
  return file_->data() + data_offset_ + info.offset;
}

at::Tensor GgufFile::load_float(const std::string& name) const {
  const GgufTensorInfo* info = find_tensor(name);
  if (info == nullptr) {
    std::vector<std::string> names;
    names.reserve(tensors_.size());
    for (const GgufTensorInfo& tensor : tensors_) names.push_back(tensor.name);
    std::string message = "no such tensor in the file";
    const std::string suggestion = nearest_match(name, names);
    if (!suggestion.empty()) message += "; did you mean '" + suggestion + "'?";
    throw bad_input(message).tensor(name).file(path_);
  }
  try {
    const GgmlTypeInfo& type = ggml_type_info(info->type);
    if (!type.dequantizable) {  // checked before allocating the output
      throw bad_input(std::string("tensor type ") + type.name + " is not supported; supported: " +
                      ggml_dequantizable_type_names());
    }
    at::Tensor out = at::empty(info->torch_shape(), at::kFloat);
    dequantize_to_float(info->type, tensor_data(*info), info->n_elements(), out.data_ptr<float>());
    file_->release(tensor_data(*info), info->n_bytes);  // read once: keep the mapping's pages out of RSS
    return out;
  } catch (const Error& error) {
    throw error.with_defaults(ErrorContext{path_, -1, "", name});
  }
}

}  // namespace retort
