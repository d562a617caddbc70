#include "data/source.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <nlohmann/json.hpp>

#include "io/atomic_file.h"

namespace retort::data {
ExampleSource::~ExampleSource() {
  if (fd_ >= 0) ::close(fd_);
}

std::shared_ptr<const ExampleSource> ExampleSource::open(const std::string& path) {
  std::shared_ptr<ExampleSource> source(new ExampleSource());
  source->path_ = path;
  source->fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (source->fd_ < 0) throw bad_input(std::string("cannot open the dataset: ") + std::strerror(errno)).file(path);
  // One pass over the file in 1 MiB blocks, recording where each non-blank line starts.
  constexpr size_t kBlock = 1 << 20;
  std::string block(kBlock, '\0');
  uint64_t offset = 0, line_start = 0;
  uint32_t line = 1;
  bool line_blank = true, first_char_seen = false, is_array = false;
  auto end_line = [&](uint64_t end) {
    if (!line_blank) {
      if (end - line_start > UINT32_MAX) throw bad_input("a line longer than 4 GiB").file(path).line(line);
      source->starts_.push_back(line_start);
      source->lengths_.push_back(static_cast<uint32_t>(end - line_start));
      source->lines_.push_back(line);
    }
    line_start = end + 1;
    line_blank = true;
    ++line;
  };
  while (!is_array) {
    const ssize_t got = ::pread(source->fd_, block.data(), kBlock, static_cast<off_t>(offset));
    if (got < 0) throw internal_error(std::string("cannot read the dataset: ") + std::strerror(errno)).file(path);
    if (got == 0) break;
    for (ssize_t i = 0; i < got; ++i) {
      const char c = block[static_cast<size_t>(i)];
      if (c == '\n') {
        end_line(offset + static_cast<uint64_t>(i));
      } else if (c != ' ' && c != '\t' && c != '\r') {
        if (!first_char_seen && c == '[') {
          is_array = true;
          break;
        }
        first_char_seen = true;
        line_blank = false;
      }
    }
    offset += static_cast<uint64_t>(got);
  }
  if (is_array) {
    source->starts_.clear();
    nlohmann::ordered_json array;
    try {
      array = nlohmann::ordered_json::parse(read_text_file(path));
    } catch (const nlohmann::ordered_json::exception& error) {
      throw bad_input(std::string("invalid JSON array: ") + error.what()).file(path);
    }
    for (const auto& element : array) source->elements_.push_back(element.dump());
  } else {
    end_line(offset);
  }
  if (source->size() == 0) throw bad_input("the dataset has no examples").file(path);
  return source;
}

std::string ExampleSource::read(int64_t index) const {
  if (starts_.empty()) return elements_.at(static_cast<size_t>(index));
  const size_t i = static_cast<size_t>(index);
  std::string text(lengths_.at(i), '\0');
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t got = ::pread(fd_, text.data() + done, text.size() - done, static_cast<off_t>(starts_[i] + done));
    if (got <= 0) {
      throw internal_error(std::string("cannot read the dataset: ") + (got < 0 ? std::strerror(errno) : "file shrank"))
          .file(path_)
          .line(lines_[i]);
    }
    done += static_cast<size_t>(got);
  }
  return text;
}

ErrorContext ExampleSource::where(int64_t index) const {
  ErrorContext context;
  context.file = path_;
  if (starts_.empty()) context.key = "[" + std::to_string(index) + "]";
  else context.line = lines_.at(static_cast<size_t>(index));
  return context;
}

}  // namespace retort::data
