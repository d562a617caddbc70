#include "export/quant_scheme.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <utility>

#include "io/error.h"

namespace retort {
namespace {

struct SchemeEntry {
  QuantScheme scheme;
  const char* name;
  uint32_t file_type;
};

constexpr std::array<SchemeEntry, 8> kSchemes{{
    {QuantScheme::kF32, "f32", 0},
    {QuantScheme::kF16, "f16", 1},
    {QuantScheme::kBF16, "bf16", 32},
    {QuantScheme::kQ8_0, "q8_0", 7},
    {QuantScheme::kQ4_0, "q4_0", 2},
    {QuantScheme::kQ4_K_M, "q4_k_m", 15},
    {QuantScheme::kQ5_K_M, "q5_k_m", 17},
    {QuantScheme::kQ6_K, "q6_k", 18},
}};

const SchemeEntry& entry(QuantScheme scheme) {
  for (const SchemeEntry& e : kSchemes) {
    if (e.scheme == scheme) return e;
  }
  throw internal_error("unknown quant scheme");
}

// llama-quant.cpp use_more_bits: the first and last eighth of the layers, and every third between.
bool use_more_bits(int64_t layer, int64_t n_layers) {
  return layer < n_layers / 8 || layer >= 7 * n_layers / 8 || (layer - n_layers / 8) % 3 == 2;
}

int64_t block_index(const std::string& name) {
  if (name.rfind("blk.", 0) != 0) return -1;
  return std::stoll(name.substr(4, name.find('.', 4) - 4));
}

bool fits(GgmlType type, int64_t row) { return row % ggml_type_info(type).block_size == 0; }

}  // namespace

QuantScheme parse_quant_scheme(const std::string& name) {
  std::string lower = name;
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  for (const SchemeEntry& e : kSchemes) {
    if (lower == e.name) return e.scheme;
  }
  throw bad_input("unknown quant type '" + name + "'; valid: " + quant_scheme_names()).key("quant");
}

std::string quant_scheme_name(QuantScheme scheme) { return entry(scheme).name; }

std::string quant_scheme_names() {
  std::string names;
  for (const SchemeEntry& e : kSchemes) names += (names.empty() ? "" : ", ") + std::string(e.name);
  return names;
}

uint32_t quant_scheme_file_type(QuantScheme scheme) { return entry(scheme).file_type; }

TensorTypeChoice choose_tensor_type(QuantScheme scheme, const std::string& name, const std::vector<int64_t>& ne,
                                    const QuantContext& context) {
  // Both tools keep 1-D tensors (norms, biases, rope_freqs) in F32.
  if (ne.size() < 2 || !name.ends_with(".weight") || name.ends_with("_norm.weight")) return {GgmlType::F32, ""};
  const int64_t row = ne[0];
  GgmlType type = GgmlType::F32;
  switch (scheme) {
    case QuantScheme::kF32: return {GgmlType::F32, ""};
    case QuantScheme::kF16: return {GgmlType::F16, ""};
    case QuantScheme::kBF16: return {GgmlType::BF16, ""};
    case QuantScheme::kQ8_0:
      // convert_hf_to_gguf.py: a row that is not whole blocks is written as F16.
      if (!fits(GgmlType::Q8_0, row)) return {GgmlType::F16, "row length " + std::to_string(row) + " is not a multiple of 32: F16"};
      return {GgmlType::Q8_0, ""};
    case QuantScheme::kQ4_0: type = GgmlType::Q4_0; break;
    case QuantScheme::kQ4_K_M: type = GgmlType::Q4_K; break;
    case QuantScheme::kQ5_K_M: type = GgmlType::Q5_K; break;
    case QuantScheme::kQ6_K: type = GgmlType::Q6_K; break;
  }
  // llama_tensor_get_type, for the three llama-quantize schemes written here.
  const int64_t layer = block_index(name);
  const bool k_mix = scheme == QuantScheme::kQ4_K_M || scheme == QuantScheme::kQ5_K_M;
  if (name == "output.weight" || (!context.has_output && name == "token_embd.weight")) {
    type = row % 256 != 0 ? GgmlType::Q8_0 : GgmlType::Q6_K;
  } else if (k_mix && name.find("attn_v.weight") != std::string::npos) {
    if (use_more_bits(layer, context.n_layers)) type = GgmlType::Q6_K;
    if (context.is_70b && type == GgmlType::Q4_K) type = GgmlType::Q5_K;  // LLM_TYPE_70B
  } else if (k_mix && name.find("ffn_down") != std::string::npos) {
    if (use_more_bits(layer, context.n_layers)) type = GgmlType::Q6_K;
  }
  if (fits(type, row)) return {type, ""};
  // llama-quantize's fallbacks for rows that are not whole super-blocks.
  const GgmlType wanted = type;
  if (type == GgmlType::Q4_K) type = GgmlType::Q5_0;
  if (type == GgmlType::Q5_K) type = GgmlType::Q5_1;
  if (type == GgmlType::Q6_K) type = GgmlType::Q8_0;
  if (!fits(type, row)) type = GgmlType::F16;
  return {type, "row length " + std::to_string(row) + " is not a multiple of the " + ggml_type_name(wanted) +
                    " block size " + std::to_string(ggml_type_info(wanted).block_size) + ": " + ggml_type_name(type)};
}

}  // namespace retort
