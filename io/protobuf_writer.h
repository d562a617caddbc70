// The protocol-buffer wire format, as far as Retort writes it by hand (SentencePiece ModelProto
// from GGUF metadata, TensorBoard Event records): varints, fixed-width numbers, length-delimited
// fields. Reference: protobuf.dev/programming-guides/encoding.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>

namespace retort {

class ProtoWriter {
 public:
  void varint(uint64_t value) {
    while (value >= 0x80) {
      bytes_.push_back(static_cast<char>((value & 0x7F) | 0x80));
      value >>= 7;
    }
    bytes_.push_back(static_cast<char>(value));
  }
  void tag(int field, int wire_type) { varint(static_cast<uint64_t>(field) << 3 | wire_type); }
  // int32/int64/enum/bool: negative values are sign-extended to ten bytes, as protobuf does.
  void int_field(int field, int64_t value) {
    tag(field, 0);
    varint(static_cast<uint64_t>(value));
  }
  void float_field(int field, float value) {
    tag(field, 5);
    fixed(value);
  }
  void double_field(int field, double value) {
    tag(field, 1);
    fixed(value);
  }
  void bytes_field(int field, const std::string& value) {
    tag(field, 2);
    varint(value.size());
    bytes_ += value;
  }
  template <class T>
  void fixed(T value) {  // little-endian hosts (checked where files are read)
    char raw[sizeof(T)];
    std::memcpy(raw, &value, sizeof(T));
    bytes_.append(raw, sizeof(T));
  }
  const std::string& bytes() const { return bytes_; }

 private:
  std::string bytes_;
};

}  // namespace retort
