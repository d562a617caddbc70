// The byte format of a teacher's sparse targets for one sequence, as the offline cache stores
// them: per counted token the top-k token ids (ascending, delta-coded as LEB128 varints), their
// log-probabilities and the log of the mass outside them, either exact (float32) or as 16-bit
// fixed point (1/256 nat steps: at most 0.2% relative error in a probability), laid out in byte
// planes so zstd finds the redundancy; the whole block is one zstd frame.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <string_view>

namespace retort {

enum class LogProbEncoding { kQ16, kFloat32 };
LogProbEncoding parse_log_prob_encoding(const std::string& name);  // "q16" | "float32"
std::string log_prob_encoding_name(LogProbEncoding encoding);

// A sequence's (or a batch's) sparse teacher targets for n counted tokens.
struct TopkBlock {
  at::Tensor ids;            // [n, k] int64, ascending in each row
  at::Tensor log_probs;      // [n, k] float32: log p at temperature 1 over the full vocabulary
  at::Tensor rest_log_mass;  // [n] float32: log(1 - sum of the k probabilities); -inf when nothing is left
  int64_t tokens() const { return ids.defined() ? ids.size(0) : 0; }
};

// q16: code = round(-log_p * 256) in [0, 65534]; 65535 stands for -inf (no mass).
uint16_t quantize_log_prob(float log_prob);
float dequantize_log_prob(uint16_t code);

// The raw (uncompressed) bytes of a block; ids must ascend within each row.
std::string encode_topk_block(const TopkBlock& block, LogProbEncoding encoding);
// Inverse of encode_topk_block; bad_input naming `where` when the bytes do not hold n x k entries.
TopkBlock decode_topk_block(std::string_view bytes, int64_t tokens, int64_t k, LogProbEncoding encoding,
                            const std::string& where);

std::string zstd_compress(std::string_view raw, int level);
std::string zstd_decompress(std::string_view frame, size_t raw_size, const std::string& where);

}  // namespace retort
