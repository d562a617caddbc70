#include "export/gguf_writer.h"

#include <cstring>
#include <optional>
#include <type_traits>

#include "io/error.h"

namespace retort {
namespace {

constexpr size_t kMaxTensorNameBytes = 63;  // GGML_MAX_NAME (64) includes the NUL
constexpr size_t kMaxKeyBytes = 65535;

template <class T>
void put(std::string& out, T value) {
  char raw[sizeof(T)];
  std::memcpy(raw, &value, sizeof(T));
  out.append(raw, sizeof(T));
}

void put_string(std::string& out, const std::string& text) {
  put<uint64_t>(out, text.size());
  out += text;
}

template <class T>
void put_scalar(std::string& out, const T& value) {
  if constexpr (std::is_same_v<T, std::string>) {
    put_string(out, value);
  } else if constexpr (std::is_same_v<T, bool>) {
    put<uint8_t>(out, value ? 1 : 0);
  } else {
    put<T>(out, value);
  }
}

void put_value(std::string& out, const GgufValue& value) {
  std::visit(
      [&](const auto& v) {
        using V = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<V, GgufArray>) {
          put<uint32_t>(out, static_cast<uint32_t>(v.element_type()));
          put<uint64_t>(out, v.size());
          std::visit(
              [&](const auto& items) {
                using Items = std::decay_t<decltype(items)>;
                if constexpr (!std::is_same_v<Items, std::monostate>) {
                  for (const auto& item : items) put_scalar(out, static_cast<typename Items::value_type>(item));
                }
              },
              v.data);
        } else {
          put_scalar(out, v);
        }
      },
      value.data);
}

// The value type llama.cpp requires for a key it reads ("key ... has wrong type" otherwise; docs/formats.md
// §3.4, §3.5, §3.9). Architecture keys are matched by their suffix after "<arch>.".
std::optional<GgufValueType> required_type(const std::string& key) {
  using T = GgufValueType;
  static const std::vector<std::pair<std::string, T>> exact = {
      {"general.architecture", T::kString}, {"general.type", T::kString}, {"general.name", T::kString},
      {"general.file_type", T::kUint32}, {"general.quantization_version", T::kUint32},
      {"tokenizer.ggml.model", T::kString}, {"tokenizer.ggml.pre", T::kString},
      {"tokenizer.chat_template", T::kString}, {"tokenizer.ggml.add_bos_token", T::kBool},
      {"tokenizer.ggml.add_eos_token", T::kBool}, {"tokenizer.ggml.add_space_prefix", T::kBool},
      {"adapter.type", T::kString}, {"adapter.lora.alpha", T::kFloat32}};
  for (const auto& [name, type] : exact) {
    if (key == name) return type;
  }
  if (key.rfind("tokenizer.ggml.", 0) == 0 && key.ends_with("_token_id")) return T::kUint32;
  static const std::vector<std::pair<std::string, T>> arch_suffixes = {
      {".context_length", T::kUint32}, {".embedding_length", T::kUint32}, {".block_count", T::kUint32},
      {".feed_forward_length", T::kUint32}, {".attention.head_count", T::kUint32},
      {".attention.head_count_kv", T::kUint32}, {".attention.layer_norm_rms_epsilon", T::kFloat32},
      {".rope.freq_base", T::kFloat32}, {".rope.dimension_count", T::kUint32}, {".attention.key_length", T::kUint32},
      {".attention.value_length", T::kUint32}, {".vocab_size", T::kUint32}, {".rope.scaling.factor", T::kFloat32},
      {".rope.scaling.type", T::kString}};
  if (key.rfind("general.", 0) == 0 || key.rfind("tokenizer.", 0) == 0) return std::nullopt;
  for (const auto& [suffix, type] : arch_suffixes) {
    if (key.ends_with(suffix) && key.find('.') == key.size() - suffix.size()) return type;
  }
  return std::nullopt;
}

// Arrays llama.cpp reads with a fixed element type.
std::optional<GgufValueType> required_element_type(const std::string& key) {
  if (key == "tokenizer.ggml.tokens" || key == "tokenizer.ggml.merges") return GgufValueType::kString;
  if (key == "tokenizer.ggml.scores") return GgufValueType::kFloat32;
  if (key == "tokenizer.ggml.token_type") return GgufValueType::kInt32;
  return std::nullopt;
}

}  // namespace

GgufWriter::GgufWriter(std::string path, uint32_t alignment) : path_(std::move(path)), alignment_(alignment) {
  if (alignment_ == 0 || (alignment_ & (alignment_ - 1)) != 0 || alignment_ % 8 != 0) {
    throw bad_input("GGUF alignment must be a power of two and a multiple of 8, not " + std::to_string(alignment_))
        .file(path_);
  }
  if (alignment_ != 32) metadata_.emplace_back("general.alignment", GgufValue{alignment_});
  if (alignment_ != 32) keys_.insert("general.alignment");
}

void GgufWriter::require(State allowed, State also, const char* step) const {
  if (state_ != allowed && state_ != also) {
    throw internal_error(std::string("GGUF writer: ") + step + " is out of order").file(path_);
  }
}

bool GgufWriter::has_key(const std::string& key) const { return keys_.count(key) > 0; }

void GgufWriter::set(const std::string& key, GgufValue value) {
  require(State::kMetadata, State::kMetadata, "setting metadata");
  if (key.empty() || key.size() > kMaxKeyBytes) {
    throw bad_input("GGUF metadata key must be 1 to 65535 bytes").file(path_).key(key);
  }
  if (key == "general.alignment") {
    throw internal_error("GGUF writer: general.alignment is set by the constructor").file(path_);
  }
  if (const auto* array = std::get_if<GgufArray>(&value.data);
      array != nullptr && array->element_type() == GgufValueType::kArray) {
    throw bad_input("GGUF arrays of arrays are not readable by ggml").file(path_).key(key);
  }
  const auto wrong = [&](GgufValueType want, GgufValueType got, const char* what) {
    throw bad_input(std::string("llama.cpp reads this key as ") + what + gguf_value_type_name(want) + ", not " +
                    gguf_value_type_name(got))
        .file(path_)
        .key(key);
  };
  if (const auto want = required_type(key); want && *want != value.type()) wrong(*want, value.type(), "");
  if (const auto want = required_element_type(key)) {
    const auto* array = std::get_if<GgufArray>(&value.data);
    if (array == nullptr) wrong(GgufValueType::kArray, value.type(), "");
    if (array->element_type() != *want) wrong(*want, array->element_type(), "an array of ");
  }
  if (!keys_.insert(key).second) throw bad_input("duplicate GGUF metadata key").file(path_).key(key);
  metadata_.emplace_back(key, std::move(value));
}

void GgufWriter::add_tensor(const std::string& name, const std::vector<int64_t>& ne, GgmlType type) {
  require(State::kMetadata, State::kTensorInfos, "adding a tensor");
  state_ = State::kTensorInfos;
  if (name.empty() || name.size() > kMaxTensorNameBytes) {
    throw bad_input("GGUF tensor names must be 1 to 63 bytes (llama.cpp's limit); this one is " +
                    std::to_string(name.size()))
        .file(path_)
        .tensor(name);
  }
  if (!tensor_names_.insert(name).second) throw bad_input("duplicate GGUF tensor name").file(path_).tensor(name);
  if (ne.empty() || ne.size() > 4) {
    throw bad_input("GGUF tensors have 1 to 4 dimensions, not " + std::to_string(ne.size())).file(path_).tensor(name);
  }
  int64_t elements = 1;
  for (const int64_t n : ne) {
    if (n <= 0) throw bad_input("GGUF tensor dimensions must be positive").file(path_).tensor(name);
    elements *= n;
  }
  const GgmlTypeInfo& info = ggml_type_info(type);
  if (ne[0] % info.block_size != 0) {
    throw bad_input("row length " + std::to_string(ne[0]) + " is not a multiple of the " + info.name +
                    " block size " + std::to_string(info.block_size))
        .file(path_)
        .tensor(name);
  }
  const uint64_t n_bytes = static_cast<uint64_t>(elements / info.block_size) * info.type_size;
  tensors_.push_back({name, ne, type, data_size_, n_bytes});
  data_size_ += (n_bytes + alignment_ - 1) / alignment_ * alignment_;
}

void GgufWriter::write_header() {
  std::string header;
  put<uint32_t>(header, 0x46554747u);  // "GGUF"
  put<uint32_t>(header, 3);
  put<uint64_t>(header, tensors_.size());
  put<uint64_t>(header, metadata_.size());
  for (const auto& [key, value] : metadata_) {
    put_string(header, key);
    put<uint32_t>(header, static_cast<uint32_t>(value.type()));
    put_value(header, value);
  }
  for (const TensorEntry& tensor : tensors_) {
    put_string(header, tensor.name);
    put<uint32_t>(header, static_cast<uint32_t>(tensor.ne.size()));
    for (const int64_t n : tensor.ne) put<uint64_t>(header, static_cast<uint64_t>(n));
    put<uint32_t>(header, static_cast<uint32_t>(tensor.type));
    put<uint64_t>(header, tensor.offset);
  }
  header.append((alignment_ - header.size() % alignment_) % alignment_, '\0');
  file_ = std::make_unique<AtomicFile>(path_);
  file_->write(header);
}

void GgufWriter::write_tensor_data(const std::string& name, const void* data, uint64_t n_bytes) {
  require(State::kTensorInfos, State::kData, "writing tensor data");
  if (state_ == State::kTensorInfos) {
    write_header();
    state_ = State::kData;
  }
  if (next_tensor_ >= tensors_.size() || tensors_[next_tensor_].name != name) {
    throw internal_error("GGUF writer: tensor data out of order (expected '" +
                         (next_tensor_ < tensors_.size() ? tensors_[next_tensor_].name : std::string("<none>")) + "')")
        .file(path_)
        .tensor(name);
  }
  const TensorEntry& entry = tensors_[next_tensor_];
  if (n_bytes != entry.n_bytes) {
    throw internal_error("GGUF writer: " + std::to_string(n_bytes) + " bytes given, " +
                         std::to_string(entry.n_bytes) + " expected")
        .file(path_)
        .tensor(name);
  }
  file_->write(data, n_bytes);
  file_->write_zeros((alignment_ - n_bytes % alignment_) % alignment_);
  ++next_tensor_;
}

void GgufWriter::commit() {
  if (state_ == State::kMetadata || (state_ == State::kTensorInfos && tensors_.empty())) {
    write_header();  // a file with metadata only (vocabulary-only files)
    state_ = State::kData;
  }
  require(State::kData, State::kData, "commit");
  if (next_tensor_ != tensors_.size()) {
    throw internal_error("GGUF writer: " + std::to_string(tensors_.size() - next_tensor_) +
                         " tensors have no data yet (next: " + tensors_[next_tensor_].name + ")")
        .file(path_);
  }
  file_->commit();
  state_ = State::kDone;
}

uint64_t GgufWriter::bytes_written() const { return file_ ? file_->bytes_written() : 0; }

}  // namespace retort
