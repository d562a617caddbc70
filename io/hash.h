// A small non-cryptographic content hash (64-bit FNV-1a) for identity checks: does this cache
// belong to this dataset and tokenizer? Not a defence against deliberate collisions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace retort {

class ContentHash {
 public:
  ContentHash& update(const void* data, size_t size) {
    const auto* bytes = static_cast<const uint8_t*>(data);
    for (size_t i = 0; i < size; ++i) state_ = (state_ ^ bytes[i]) * 0x100000001B3ULL;
    return *this;
  }
  ContentHash& update(std::string_view text) {
    update_value(static_cast<uint64_t>(text.size()));  // length-prefixed: "ab"+"c" != "a"+"bc"
    return update(text.data(), text.size());
  }
  template <typename T>
  ContentHash& update_value(const T& value) {
    return update(&value, sizeof value);
  }
  uint64_t digest() const { return state_; }
  std::string hex() const;  // 16 lowercase hex digits

 private:
  uint64_t state_ = 0xCBF29CE484222325ULL;
};

// The hash of a file's bytes; bad_input naming the path when it cannot be read.
std::string hash_file(const std::string& path);

}  // namespace retort
