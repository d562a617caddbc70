#include "io/hash.h"

#include <cstdio>
#include <fstream>
#include <vector>

#include "io/error.h"

namespace retort {

std::string ContentHash::hex() const {
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(state_));
  return text;
}

std::string hash_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw bad_input("cannot read the file").file(path);
  ContentHash hash;
  std::vector<char> buffer(1 << 20);
  while (in) {
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    hash.update(buffer.data(), static_cast<size_t>(in.gcount()));
  }
  return hash.hex();
}

}  // namespace retort
