// A read-only memory map of a whole file. Tensors viewed from it keep it alive
// through a shared_ptr, so a checkpoint is never copied into RAM as a whole.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace retort {

class MappedFile {
 public:
  // Throws bad_input naming the path when the file cannot be opened or mapped.
  static std::shared_ptr<const MappedFile> open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }
  // Drops the pages of [begin, begin + length) from this process's memory once they have been
  // copied out (streaming a checkpoint tensor by tensor would otherwise keep every page read so
  // far resident). The bytes stay readable: the kernel reads them back from the file if needed.
  void release(const uint8_t* begin, size_t length) const;

 private:
  MappedFile() = default;
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace retort
