// Atomic file writes: data goes to a temp file beside the target, is fsynced, and is
// renamed over the target only on commit(). A crash or an error at any moment leaves
// either the old file or the new one, never a torn one.
#pragma once

#include <cstddef>
#include <cstdio>
#include <string>
#include <string_view>

namespace retort {

class AtomicFile {
 public:
  // Creates the temp file; bad_input naming the path when its folder is unwritable.
  explicit AtomicFile(std::string path);
  ~AtomicFile();  // removes the temp file unless committed
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, size_t size);
  void write(std::string_view text) { write(text.data(), text.size()); }
  void write_zeros(size_t count);
  uint64_t bytes_written() const { return written_; }
  void commit();

  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::string temp_path_;
  std::FILE* file_ = nullptr;
  uint64_t written_ = 0;
  bool committed_ = false;
};

// Writes a whole small file (JSON, text) atomically.
void write_file_atomic(const std::string& path, std::string_view contents);

// Reads a whole file; bad_input naming the path when it cannot be read.
std::string read_text_file(const std::string& path);

}  // namespace retort
