#include "io/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "io/error.h"

namespace retort {
namespace {

void fsync_directory_of(const std::string& path) {
  std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (parent.empty()) parent = ".";
  const int fd = ::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

}  // namespace

AtomicFile::AtomicFile(std::string path) : path_(std::move(path)) {
  temp_path_ = path_ + ".tmp." + std::to_string(::getpid());
  file_ = std::fopen(temp_path_.c_str(), "wb");
  if (file_ == nullptr) {
    throw bad_input(std::string("cannot write: ") + std::strerror(errno)).file(path_);
  }
}

AtomicFile::~AtomicFile() {
  if (file_ != nullptr) std::fclose(file_);
  if (!committed_) std::remove(temp_path_.c_str());
}

void AtomicFile::write(const void* data, size_t size) {
  if (size == 0) return;
  if (std::fwrite(data, 1, size, file_) != size) {
    throw internal_error(std::string("write failed: ") + std::strerror(errno)).file(path_);
  }
  written_ += size;
}

void AtomicFile::write_zeros(size_t count) {
  static const char zeros[256] = {};
  while (count > 0) {
    const size_t chunk = std::min(count, sizeof(zeros));
    write(zeros, chunk);
    count -= chunk;
  }
}

void AtomicFile::commit() {
  if (std::fflush(file_) != 0 || ::fsync(::fileno(file_)) != 0) {
    throw internal_error(std::string("write failed: ") + std::strerror(errno)).file(path_);
  }
  const int close_rc = std::fclose(file_);
  file_ = nullptr;
  if (close_rc != 0) throw internal_error(std::string("close failed: ") + std::strerror(errno)).file(path_);
  if (std::rename(temp_path_.c_str(), path_.c_str()) != 0) {
    throw internal_error(std::string("rename failed: ") + std::strerror(errno)).file(path_);
  }
  committed_ = true;
  fsync_directory_of(path_);
}

void write_file_atomic(const std::string& path, std::string_view contents) {
  AtomicFile file(path);
  file.write(contents);
  file.commit();
}

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw bad_input(std::string("cannot read: ") + std::strerror(errno)).file(path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

}  // namespace retort
