// TensorBoard event files written here (no TensorFlow): records of serialized Event protos,
// each framed by its length and masked CRC32C, so `tensorboard --logdir` shows the curves.
// Reference: tensorflow/core/lib/io/record_writer.cc, tensorboard/compat/proto/event.proto.
#pragma once

#include <cstdint>
#include <fstream>
#include <string>

namespace retort {

class TensorBoardWriter {
 public:
  // Creates DIR/events.out.tfevents.<seconds>.retort and writes the file_version event.
  explicit TensorBoardWriter(const std::string& directory);
  void scalar(const std::string& tag, double value, int64_t step);
  void flush() { out_.flush(); }
  const std::string& path() const { return path_; }

 private:
  void write_record(const std::string& data);
  std::string path_;
  std::ofstream out_;
};

uint32_t crc32c(const void* data, size_t size);

// Rewrites each event file in `directory` to the records of steps <= last_step (the file_version
// record included) and deletes the files left with no step > 0, so a resumed run logs each step
// once. A torn or damaged record ends a file: what follows it is dropped.
void cut_tensorboard_events(const std::string& directory, int64_t last_step);

}  // namespace retort
