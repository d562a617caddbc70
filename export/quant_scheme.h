// Which ggml type each GGUF tensor gets for a `--quant` choice: llama.cpp's converter rules for
// f32/f16/bf16/q8_0 (convert_hf_to_gguf.py: 1-D tensors and norms stay F32) and llama-quantize's
// rules for q4_0/q4_k_m/q5_k_m/q6_k (llama-quant.cpp llama_tensor_get_type: Q6_K output, more bits for
// some attn_v/ffn_down layers, fallbacks for rows that are not whole blocks).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "io/gguf_dequant.h"

namespace retort {

enum class QuantScheme { kF32, kF16, kBF16, kQ8_0, kQ4_0, kQ4_K_M, kQ5_K_M, kQ6_K };

// "f32", "f16", "bf16", "q8_0", "q4_0", "q4_k_m", "q5_k_m", "q6_k" (case-insensitive); bad_input listing
// the valid names otherwise.
QuantScheme parse_quant_scheme(const std::string& name);
std::string quant_scheme_name(QuantScheme scheme);
std::string quant_scheme_names();
// general.file_type (docs/formats.md §3.8).
uint32_t quant_scheme_file_type(QuantScheme scheme);

// The per-model facts llama-quantize's choices depend on.
struct QuantContext {
  int64_t n_layers = 0;
  bool has_output = true;  // an output.weight exists (false: tied embeddings)
  bool is_70b = false;     // llama.cpp's LLM_TYPE_70B (80 layers, arch llama)
};

struct TensorTypeChoice {
  GgmlType type;
  std::string fallback_note;  // non-empty when the preferred type did not fit the row length
};

// `name`: GGUF tensor name; `ne`: GGUF dims. `layer`: the block index for blk.N tensors.
TensorTypeChoice choose_tensor_type(QuantScheme scheme, const std::string& name, const std::vector<int64_t>& ne,
                                    const QuantContext& context);

}  // namespace retort
