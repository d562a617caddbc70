#include "train/tensorboard.h"

#include <array>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string_view>
#include <vector>

#include "io/atomic_file.h"
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

// Event.step (field 2, a varint) of a serialized Event; 0 when absent. nullopt: not a proto.
std::optional<int64_t> event_step(std::string_view event) {
  size_t at = 0;
  auto varint = [&]() -> std::optional<uint64_t> {
    uint64_t value = 0;
    for (int shift = 0; shift < 64 && at < event.size(); shift += 7) {
      const auto byte = static_cast<uint8_t>(event[at++]);
      value |= static_cast<uint64_t>(byte & 0x7F) << shift;
      if (!(byte & 0x80)) return value;
    }
    return std::nullopt;
  };
  int64_t step = 0;
  while (at < event.size()) {
    const auto key = varint();
    if (!key) return std::nullopt;
    const uint64_t field = *key >> 3, wire = *key & 7;
    if (wire == 0) {
      const auto value = varint();
      if (!value) return std::nullopt;
      if (field == 2) step = static_cast<int64_t>(*value);
    } else if (wire == 1 || wire == 5) {
      at += wire == 1 ? 8 : 4;
    } else if (wire == 2) {
      const auto length = varint();
      if (!length || *length > event.size() - std::min(at, event.size())) return std::nullopt;
      at += *length;
    } else {
      return std::nullopt;
    }
  }
  if (at != event.size()) return std::nullopt;
  return step;
}

// The whole records of an event file up to its first torn or damaged one: {record bytes, step}.
std::vector<std::pair<std::string_view, int64_t>> event_records(std::string_view file) {
  std::vector<std::pair<std::string_view, int64_t>> out;
  size_t at = 0;
  while (file.size() - at >= 16) {  // length, its CRC, the data, its CRC
    uint64_t length = 0;
    uint32_t length_crc = 0, data_crc = 0;
    std::memcpy(&length, file.data() + at, 8);
    std::memcpy(&length_crc, file.data() + at + 8, 4);
    if (length_crc != masked_crc(&length, 8) || length > file.size() - at - 16) break;
    const std::string_view data = file.substr(at + 12, length);
    std::memcpy(&data_crc, file.data() + at + 12 + length, 4);
    const auto step = event_step(data);
    if (data_crc != masked_crc(data.data(), data.size()) || !step) break;
    out.emplace_back(file.substr(at, 16 + length), *step);
    at += 16 + length;
  }
  return out;
}

}  // namespace

void cut_tensorboard_events(const std::string& directory, int64_t last_step) {
  std::error_code ec;
  if (!std::filesystem::is_directory(directory, ec)) return;
  for (const auto& entry : std::filesystem::directory_iterator(directory)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("events.out.tfevents.", 0) != 0 || !entry.is_regular_file()) continue;
    const std::string file = read_text_file(entry.path().string());
    std::string kept;
    bool any_step = false;
    for (const auto& [record, step] : event_records(file)) {
      if (step > last_step) continue;
      kept += record;
      any_step = any_step || step > 0;
    }
    if (!any_step) {
      std::filesystem::remove(entry.path());
    } else if (kept.size() != file.size()) {
      write_file_atomic(entry.path().string(), kept);
    }
  }
}

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
