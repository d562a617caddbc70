// The examples of a dataset file, read one at a time by index so that a multi-GB JSONL is never
// held in memory: an index of line offsets is built once (16 bytes a line) and each example is
// read with pread. A JSON array file (`[{...}, ...]`) is also accepted; it is parsed whole.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "io/error.h"

namespace retort::data {

class ExampleSource {
 public:
  // Throws bad_input naming the file when it cannot be read or is empty.
  static std::shared_ptr<const ExampleSource> open(const std::string& path);
  ~ExampleSource();

  const std::string& path() const { return path_; }
  int64_t size() const { return static_cast<int64_t>(starts_.empty() ? elements_.size() : starts_.size()); }
  // The JSON text of example `index`.
  std::string read(int64_t index) const;
  // Where example `index` is, for error messages: the file and its 1-based line (JSONL) or,
  // for a JSON array, the element as a key ("[12]").
  ErrorContext where(int64_t index) const;

 private:
  ExampleSource() = default;
  std::string path_;
  int fd_ = -1;
  // JSONL: byte range and line number of every non-blank line.
  std::vector<uint64_t> starts_;
  std::vector<uint32_t> lengths_;
  std::vector<uint32_t> lines_;
  // A JSON array file: its elements, serialised.
  std::vector<std::string> elements_;
};

}  // namespace retort::data
