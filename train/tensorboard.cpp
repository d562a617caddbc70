#include "train/tensorboard.h"

#include <array>
#include <chrono>
#include <cstring>
#include <filesystem>

#include "io/error.h"

namespace retort {
namespace {

const std::array<uint32_t, 256>& crc32c_table() {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? (0x82F63B78u ^ (c >> 1)) : (c >> 1);  // Castagnoli, reflected
      t[i] = c;
    }
    return t;
  }();
  return table;
}

uint32_t masked_crc(const void* data, size_t size) {
  const uint32_t crc = crc32c(data, size);
  return ((crc >> 15) | (crc << 17)) + 0xA282EAD8u;
}

// The protobuf wire format for the few fields an Event needs.
void put_varint(std::string& out, uint64_t value) {
  while (value >= 0x80) {
    out.push_back(static_cast<char>((value & 0x7F) | 0x80));
    value >>= 7;
  }
  out.push_back(static_cast<char>(value));
}
void put_tag(std::string& out, int field, int wire_type) { put_varint(out, static_cast<uint64_t>(field) << 3 | wire_type); }
template <class T>
void put_fixed(std::string& out, T value) {
  char raw[sizeof(T)];
  std::memcpy(raw, &value, sizeof(T));
  out.append(raw, sizeof(T));
}
void put_bytes(std::string& out, int field, const std::string& value) {
  put_tag(out, field, 2);
  put_varint(out, value.size());
  out += value;
}

double wall_time() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string event_header(int64_t step) {
  std::string event;
  put_tag(event, 1, 1);  // wall_time: double
  put_fixed(event, wall_time());
  put_tag(event, 2, 0);  // step: int64
  put_varint(event, static_cast<uint64_t>(step));
  return event;
}

}  // namespace

uint32_t crc32c(const void* data, size_t size) {
  const auto* bytes = static_cast<const uint8_t*>(data);
  uint32_t crc = 0xFFFFFFFFu;
  for (size_t i = 0; i < size; ++i) crc = crc32c_table()[(crc ^ bytes[i]) & 0xFF] ^ (crc >> 8);
  return crc ^ 0xFFFFFFFFu;
}

TensorBoardWriter::TensorBoardWriter(const std::string& directory) {
  std::filesystem::create_directories(directory);
  const auto seconds = static_cast<long long>(wall_time());
  path_ = (std::filesystem::path(directory) / ("events.out.tfevents." + std::to_string(seconds) + ".retort")).string();
  out_.open(path_, std::ios::binary | std::ios::app);
  if (!out_) throw bad_input("cannot write TensorBoard events").file(path_);
  std::string event = event_header(0);
  put_bytes(event, 3, "brain.Event:2");  // file_version
  write_record(event);
}

void TensorBoardWriter::scalar(const std::string& tag, double value, int64_t step) {
  std::string summary_value;
  put_bytes(summary_value, 1, tag);  // Summary.Value.tag
  put_tag(summary_value, 2, 5);      // Summary.Value.simple_value: float
  put_fixed(summary_value, static_cast<float>(value));
  std::string summary;
  put_bytes(summary, 1, summary_value);  // Summary.value
  std::string event = event_header(step);
  put_bytes(event, 5, summary);  // Event.summary
  write_record(event);
}

void TensorBoardWriter::write_record(const std::string& data) {
  std::string record;
  const uint64_t length = data.size();
  put_fixed(record, length);
  put_fixed(record, masked_crc(&length, sizeof(length)));
  record += data;
  put_fixed(record, masked_crc(data.data(), data.size()));
  out_.write(record.data(), static_cast<std::streamsize>(record.size()));
}

}  // namespace retort
