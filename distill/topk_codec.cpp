#include "distill/topk_codec.h"

#include <ATen/ATen.h>
#include <zstd.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "io/error.h"

namespace retort {
namespace {

constexpr float kStepsPerNat = 256.0f;
constexpr uint16_t kNoMassCode = 65535;

void put_varint(std::string& out, uint64_t value) {
  while (value >= 0x80) {
    out.push_back(static_cast<char>((value & 0x7F) | 0x80));
    value >>= 7;
  }
  out.push_back(static_cast<char>(value));
}

// Writes `count` 16- or 32-bit values as byte planes (all high bytes first): the high bytes of
// log-probabilities vary slowly and compress well, the low bytes are noise.
template <typename Word>
void put_planes(std::string& out, const Word* values, size_t count) {
  for (int plane = static_cast<int>(sizeof(Word)) - 1; plane >= 0; --plane) {
    for (size_t i = 0; i < count; ++i) out.push_back(static_cast<char>((values[i] >> (8 * plane)) & 0xFF));
  }
}

template <typename Word>
void get_planes(const uint8_t* in, Word* values, size_t count) {
  for (size_t i = 0; i < count; ++i) values[i] = 0;
  for (int plane = static_cast<int>(sizeof(Word)) - 1; plane >= 0; --plane) {
    for (size_t i = 0; i < count; ++i) values[i] = static_cast<Word>(values[i] | (static_cast<Word>(*in++) << (8 * plane)));
  }
}

// Log-probabilities as the words put_planes writes.
std::vector<uint16_t> q16_words(const float* values, size_t count) {
  std::vector<uint16_t> words(count);
  for (size_t i = 0; i < count; ++i) words[i] = quantize_log_prob(values[i]);
  return words;
}

std::vector<uint32_t> float_words(const float* values, size_t count) {
  std::vector<uint32_t> words(count);
  std::memcpy(words.data(), values, count * sizeof(float));
  return words;
}

}  // namespace

LogProbEncoding parse_log_prob_encoding(const std::string& name) {
  if (name == "q16") return LogProbEncoding::kQ16;
  if (name == "float32") return LogProbEncoding::kFloat32;
  throw bad_input("unknown log-prob encoding '" + name + "'; valid: q16, float32").key("distill.cache_log_probs");
}

std::string log_prob_encoding_name(LogProbEncoding encoding) {
  return encoding == LogProbEncoding::kQ16 ? "q16" : "float32";
}

uint16_t quantize_log_prob(float log_prob) {
  if (!(log_prob > -std::numeric_limits<float>::infinity())) return kNoMassCode;  // -inf and NaN
  const float steps = std::round(-log_prob * kStepsPerNat);
  if (steps <= 0) return 0;  // log p > 0 is float rounding of p = 1
  return static_cast<uint16_t>(std::min(steps, static_cast<float>(kNoMassCode - 1)));
}

float dequantize_log_prob(uint16_t code) {
  if (code == kNoMassCode) return -std::numeric_limits<float>::infinity();
  return -static_cast<float>(code) / kStepsPerNat;
}

std::string encode_topk_block(const TopkBlock& block, LogProbEncoding encoding) {
  const at::Tensor ids = block.ids.to(at::kLong).contiguous();
  const at::Tensor log_probs = block.log_probs.to(at::kFloat).contiguous();
  const at::Tensor rest = block.rest_log_mass.to(at::kFloat).contiguous();
  const int64_t n = ids.size(0), k = ids.size(1);
  std::string out;
  out.reserve(static_cast<size_t>(n * k * 4 + n * 4));
  const int64_t* id = ids.data_ptr<int64_t>();
  for (int64_t row = 0; row < n; ++row) {
    int64_t previous = -1;
    for (int64_t j = 0; j < k; ++j) {
      const int64_t value = id[row * k + j];
      if (value <= previous) throw internal_error("top-k ids must ascend within a token");
      put_varint(out, static_cast<uint64_t>(value - previous - 1));
      previous = value;
    }
  }
  const size_t entries = static_cast<size_t>(n * k), tokens = static_cast<size_t>(n);
  if (encoding == LogProbEncoding::kQ16) {
    const auto words = q16_words(log_probs.data_ptr<float>(), entries);
    const auto rest_words = q16_words(rest.data_ptr<float>(), tokens);
    put_planes(out, words.data(), entries);
    put_planes(out, rest_words.data(), tokens);
  } else {
    const auto words = float_words(log_probs.data_ptr<float>(), entries);
    const auto rest_words = float_words(rest.data_ptr<float>(), tokens);
    put_planes(out, words.data(), entries);
    put_planes(out, rest_words.data(), tokens);
  }
  return out;
}

TopkBlock decode_topk_block(std::string_view bytes, int64_t tokens, int64_t k, LogProbEncoding encoding,
                            const std::string& where) {
  auto corrupt = [&](const std::string& what) { return bad_input("corrupt teacher cache block: " + what).file(where); };
  TopkBlock block;
  block.ids = at::empty({tokens, k}, at::kLong);
  int64_t* id = block.ids.data_ptr<int64_t>();
  const auto* in = reinterpret_cast<const uint8_t*>(bytes.data());
  const uint8_t* end = in + bytes.size();
  for (int64_t row = 0; row < tokens; ++row) {
    int64_t previous = -1;
    for (int64_t j = 0; j < k; ++j) {
      uint64_t gap = 0;
      for (int shift = 0;; shift += 7) {
        if (in == end || shift > 56) throw corrupt("an id runs past the block");
        const uint8_t byte = *in++;
        gap |= static_cast<uint64_t>(byte & 0x7F) << shift;
        if (!(byte & 0x80)) break;
      }
      previous += static_cast<int64_t>(gap) + 1;
      id[row * k + j] = previous;
    }
  }
  const size_t entries = static_cast<size_t>(tokens * k), count = static_cast<size_t>(tokens);
  const size_t word = encoding == LogProbEncoding::kQ16 ? 2 : 4;
  if (static_cast<size_t>(end - in) != (entries + count) * word) {
    throw corrupt("expected " + std::to_string((entries + count) * word) + " bytes of log-probs, found " +
                  std::to_string(end - in));
  }
  block.log_probs = at::empty({tokens, k}, at::kFloat);
  block.rest_log_mass = at::empty({tokens}, at::kFloat);
  float* log_probs = block.log_probs.data_ptr<float>();
  float* rest = block.rest_log_mass.data_ptr<float>();
  if (encoding == LogProbEncoding::kQ16) {
    std::vector<uint16_t> words(entries + count);
    get_planes(in, words.data(), entries);
    get_planes(in + entries * 2, words.data() + entries, count);
    for (size_t i = 0; i < entries; ++i) log_probs[i] = dequantize_log_prob(words[i]);
    for (size_t i = 0; i < count; ++i) rest[i] = dequantize_log_prob(words[entries + i]);
  } else {
    std::vector<uint32_t> words(entries + count);
    get_planes(in, words.data(), entries);
    get_planes(in + entries * 4, words.data() + entries, count);
    std::memcpy(log_probs, words.data(), entries * 4);
    std::memcpy(rest, words.data() + entries, count * 4);
  }
  return block;
}

std::string zstd_compress(std::string_view raw, int level) {
  std::string frame(ZSTD_compressBound(raw.size()), '\0');
  const size_t size = ZSTD_compress(frame.data(), frame.size(), raw.data(), raw.size(), level);
  if (ZSTD_isError(size)) throw internal_error(std::string("zstd: ") + ZSTD_getErrorName(size));
  frame.resize(size);
  return frame;
}

std::string zstd_decompress(std::string_view frame, size_t raw_size, const std::string& where) {
  std::string raw(raw_size, '\0');
  const size_t size = ZSTD_decompress(raw.data(), raw.size(), frame.data(), frame.size());
  if (ZSTD_isError(size) || size != raw_size) {
    throw bad_input(std::string("corrupt teacher cache block (zstd: ") +
                    (ZSTD_isError(size) ? ZSTD_getErrorName(size) : "wrong size") + ")")
        .file(where);
  }
  return raw;
}

}  // namespace retort
