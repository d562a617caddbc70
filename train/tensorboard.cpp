#include "train/tensorboard.h"

#include <array>
#include <chrono>
#include <cstring>
#include <filesystem>

#include "io/error.h"
#include "io/protobuf_writer.h"

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

double wall_time() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

void event_header(ProtoWriter& event, int64_t step) {
  event.double_field(1, wall_time());  // Event.wall_time
  event.int_field(2, step);            // Event.step
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
  ProtoWriter event;
  event_header(event, 0);
  event.bytes_field(3, "brain.Event:2");  // Event.file_version
  write_record(event.bytes());
}

void TensorBoardWriter::scalar(const std::string& tag, double value, int64_t step) {
  ProtoWriter summary_value;
  summary_value.bytes_field(1, tag);                             // Summary.Value.tag
  summary_value.float_field(2, static_cast<float>(value));       // Summary.Value.simple_value
  ProtoWriter summary;
  summary.bytes_field(1, summary_value.bytes());  // Summary.value
  ProtoWriter event;
  event_header(event, step);
  event.bytes_field(5, summary.bytes());  // Event.summary
  write_record(event.bytes());
}

void TensorBoardWriter::write_record(const std::string& data) {
  ProtoWriter record;  // not a proto: the record framing, built with the same byte helpers
  const uint64_t length = data.size();
  record.fixed(length);
  record.fixed(masked_crc(&length, sizeof(length)));
  const std::string& head = record.bytes();
  out_.write(head.data(), static_cast<std::streamsize>(head.size()));
  out_.write(data.data(), static_cast<std::streamsize>(data.size()));
  const uint32_t tail = masked_crc(data.data(), data.size());
  out_.write(reinterpret_cast<const char*>(&tail), sizeof(tail));
}

}  // namespace retort
