// Dequantization of ggml block types to float32, following ggml-quants.c's reference
// dequantize_row_* operation for operation so results equal ggml's and gguf-py's bit for bit.
#include "io/gguf_dequant.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <array>
#include <cstring>

#include "io/error.h"
#include "io/text.h"

namespace retort {
namespace {

// Block layouts from ggml-common.h (docs/formats.md §3.6); the K-quants use 256-element super-blocks.
constexpr int64_t kQK = 32;
constexpr int64_t kQK_K = 256;

constexpr std::array<GgmlTypeInfo, 34> kGgmlTypes{{
    {GgmlType::F32, "F32", 1, 4, true},
    {GgmlType::F16, "F16", 1, 2, true},
    {GgmlType::Q4_0, "Q4_0", kQK, 18, true},
    {GgmlType::Q4_1, "Q4_1", kQK, 20, true},
    {GgmlType::Q5_0, "Q5_0", kQK, 22, true},
    {GgmlType::Q5_1, "Q5_1", kQK, 24, true},
    {GgmlType::Q8_0, "Q8_0", kQK, 34, true},
    {GgmlType::Q8_1, "Q8_1", kQK, 36, false},
    {GgmlType::Q2_K, "Q2_K", kQK_K, 84, false},
    {GgmlType::Q3_K, "Q3_K", kQK_K, 110, false},
    {GgmlType::Q4_K, "Q4_K", kQK_K, 144, true},
    {GgmlType::Q5_K, "Q5_K", kQK_K, 176, true},
    {GgmlType::Q6_K, "Q6_K", kQK_K, 210, true},
    {GgmlType::Q8_K, "Q8_K", kQK_K, 292, false},
    {GgmlType::IQ2_XXS, "IQ2_XXS", kQK_K, 66, false},
    {GgmlType::IQ2_XS, "IQ2_XS", kQK_K, 74, false},
    {GgmlType::IQ3_XXS, "IQ3_XXS", kQK_K, 98, false},
    {GgmlType::IQ1_S, "IQ1_S", kQK_K, 50, false},
    {GgmlType::IQ4_NL, "IQ4_NL", kQK, 18, false},
    {GgmlType::IQ3_S, "IQ3_S", kQK_K, 110, false},
    {GgmlType::IQ2_S, "IQ2_S", kQK_K, 82, false},
    {GgmlType::IQ4_XS, "IQ4_XS", kQK_K, 136, false},
    {GgmlType::I8, "I8", 1, 1, false},
    {GgmlType::I16, "I16", 1, 2, false},
    {GgmlType::I32, "I32", 1, 4, false},
    {GgmlType::I64, "I64", 1, 8, false},
    {GgmlType::F64, "F64", 1, 8, false},
    {GgmlType::IQ1_M, "IQ1_M", kQK_K, 56, false},
    {GgmlType::BF16, "BF16", 1, 2, true},
    {GgmlType::TQ1_0, "TQ1_0", kQK_K, 54, false},
    {GgmlType::TQ2_0, "TQ2_0", kQK_K, 66, false},
    {GgmlType::MXFP4, "MXFP4", kQK, 17, false},
    {GgmlType::NVFP4, "NVFP4", 64, 36, false},
    {GgmlType::Q1_0, "Q1_0", 128, 18, false},
}};

// Tensor data sits at any byte offset in the mapped file (alignment may be 1), so multi-byte
// fields are read with memcpy; compilers turn it into one load.
inline uint16_t load_u16(const uint8_t* p) {
  uint16_t value;
  std::memcpy(&value, p, sizeof(value));
  return value;
}
inline uint32_t load_u32(const uint8_t* p) {
  uint32_t value;
  std::memcpy(&value, p, sizeof(value));
  return value;
}

uint32_t fp16_bits_to_fp32_bits(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exponent = h & 0x7C00u;
  const uint32_t mantissa = h & 0x03FFu;
  if (exponent == 0x7C00u) return sign | 0x7F800000u | (mantissa << 13);  // inf, NaN payload kept
  if (exponent != 0) return sign | ((static_cast<uint32_t>(h & 0x7FFFu) + 0x1C000u) << 13);
  // Zero or subnormal: mantissa * 2^-24 is exact in float32.
  float magnitude = static_cast<float>(mantissa) * 0x1p-24f;
  uint32_t bits;
  std::memcpy(&bits, &magnitude, sizeof(bits));
  return sign | bits;
}

// ggml's CPU backend converts f16 through a 65536-entry table too; one lookup per scale or value.
const float* half_table() {
  static const std::vector<float> table = [] {
    std::vector<float> values(65536);
    for (uint32_t h = 0; h < 65536; ++h) {
      const uint32_t bits = fp16_bits_to_fp32_bits(static_cast<uint16_t>(h));
      std::memcpy(&values[h], &bits, sizeof(bits));
    }
    return values;
  }();
  return table.data();
}

// Each kernel dequantizes `n_blocks` consecutive blocks. __restrict lets the compiler vectorize:
// without it a float store could alias the uint8_t input.
//
// Why the results equal ggml's and gguf-py's exactly: every product below is an f16 scale (11
// significant bits) times at most a sub-block scale (6 bits; 7 for Q6_K's int8) times a quant
// (at most 5 bits; 7 for Q8_0, which has no sub-block scale): at most 23 significant bits, exact
// in float32. Only the final "+ m" / "- min" rounds, once. The values therefore depend neither on the order of the multiplications nor on FMA
// contraction, and tests compare them bit for bit.
using BlockKernel = void (*)(const uint8_t* __restrict x, int64_t n_blocks, float* __restrict y);

void dequantize_f32(const uint8_t* __restrict x, int64_t n_blocks, float* __restrict y) {
  std::memcpy(y, x, static_cast<size_t>(n_blocks) * sizeof(float));
}

void dequantize_f16(const uint8_t* __restrict x, int64_t n_blocks, float* __restrict y) {
  const float* half = half_table();
  for (int64_t i = 0; i < n_blocks; ++i) y[i] = half[load_u16(x + 2 * i)];
}

void dequantize_bf16(const uint8_t* __restrict x, int64_t n_blocks, float* __restrict y) {
  for (int64_t i = 0; i < n_blocks; ++i) {
    const uint32_t bits = static_cast<uint32_t>(load_u16(x + 2 * i)) << 16;
    std::memcpy(&y[i], &bits, sizeof(bits));
  }
}

// block_q8_0 { f16 d; int8 qs[32]; }: y = q * d.
void dequantize_q8_0(const uint8_t* __restrict x, int64_t n_blocks, float* __restrict y) {
  const float* half = half_table();
  for (int64_t i = 0; i < n_blocks; ++i, x += 34, y += kQK) {
    const float d = half[load_u16(x)];
    const int8_t* qs = reinterpret_cast<const int8_t*>(x + 2);
    for (int j = 0; j < kQK; ++j) y[j] = qs[j] * d;
  }
}

// block_q4_0 { f16 d; u8 qs[16]; }: low nibbles are elements 0-15, high nibbles 16-31.
void dequantize_q4_0(const uint8_t* __restrict x, int64_t n_blocks, float* __restrict y) {
  const float* half = half_table();
  for (int64_t i = 0; i < n_blocks; ++i, x += 18, y += kQK) {
    const float d = half[load_u16(x)];
    const uint8_t* qs = x + 2;
    for (int j = 0; j < kQK / 2; ++j) {
      y[j] = ((qs[j] & 0x0F) - 8) * d;
      y[j + kQK / 2] = ((qs[j] >> 4) - 8) * d;
    }
  }
}

// block_q4_1 { f16 d; f16 m; u8 qs[16]; }: y = q * d + m.
void dequantize_q4_1(const uint8_t* __restrict x, int64_t n_blocks, float* __restrict y) {
  const float* half = half_table();
  for (int64_t i = 0; i < n_blocks; ++i, x += 20, y += kQK) {
    const float d = half[load_u16(x)];
    const float m = half[load_u16(x + 2)];
    const uint8_t* qs = x + 4;
    for (int j = 0; j < kQK / 2; ++j) {
      y[j] = (qs[j] & 0x0F) * d + m;
      y[j + kQK / 2] = (qs[j] >> 4) * d + m;
    }
  }
}

// block_q5_0 { f16 d; u8 qh[4]; u8 qs[16]; }: bit j of qh is the 5th bit of element j.
void dequantize_q5_0(const uint8_t* __restrict x, int64_t n_blocks, float* __restrict y) {
  const float* half = half_table();
  for (int64_t i = 0; i < n_blocks; ++i, x += 22, y += kQK) {
    const float d = half[load_u16(x)];
    const uint32_t qh = load_u32(x + 2);
    const uint8_t* qs = x + 6;
    for (int j = 0; j < kQK / 2; ++j) {
      const int high0 = ((qh >> j) << 4) & 0x10;
      const int high1 = (qh >> (j + 12)) & 0x10;
      y[j] = (((qs[j] & 0x0F) | high0) - 16) * d;
      y[j + kQK / 2] = (((qs[j] >> 4) | high1) - 16) * d;
    }
  }
}

// block_q5_1 { f16 d; f16 m; u8 qh[4]; u8 qs[16]; }: y = q * d + m.
void dequantize_q5_1(const uint8_t* __restrict x, int64_t n_blocks, float* __restrict y) {
  const float* half = half_table();
  for (int64_t i = 0; i < n_blocks; ++i, x += 24, y += kQK) {
    const float d = half[load_u16(x)];
    const float m = half[load_u16(x + 2)];
    const uint32_t qh = load_u32(x + 4);
    const uint8_t* qs = x + 8;
    for (int j = 0; j < kQK / 2; ++j) {
      const int high0 = ((qh >> j) << 4) & 0x10;
      const int high1 = (qh >> (j + 12)) & 0x10;
      y[j] = ((qs[j] & 0x0F) | high0) * d + m;
      y[j + kQK / 2] = ((qs[j] >> 4) | high1) * d + m;
    }
  }
}

// ggml's get_scale_min_k4: eight 6-bit scales and mins packed into 12 bytes.
inline void scale_min_k4(int j, const uint8_t* q, uint8_t* scale, uint8_t* min) {
  if (j < 4) {
    *scale = q[j] & 63;
    *min = q[j + 4] & 63;
  } else {
    *scale = (q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4);
    *min = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

// block_q4_K { f16 d; f16 dmin; u8 scales[12]; u8 qs[128]; }: per 32-element sub-block
// y = (d * scale) * q - (dmin * min).
void dequantize_q4_k(const uint8_t* __restrict x, int64_t n_blocks, float* __restrict y) {
  const float* half = half_table();
  for (int64_t i = 0; i < n_blocks; ++i, x += 144) {
    const float d = half[load_u16(x)];
    const float dmin = half[load_u16(x + 2)];
    const uint8_t* scales = x + 4;
    const uint8_t* q = x + 16;
    for (int sub = 0; sub < 8; sub += 2, q += 32, y += 64) {
      uint8_t scale, min;
      scale_min_k4(sub, scales, &scale, &min);
      const float d1 = d * scale, m1 = dmin * min;
      scale_min_k4(sub + 1, scales, &scale, &min);
      const float d2 = d * scale, m2 = dmin * min;
      for (int l = 0; l < 32; ++l) y[l] = d1 * (q[l] & 0x0F) - m1;
      for (int l = 0; l < 32; ++l) y[l + 32] = d2 * (q[l] >> 4) - m2;
    }
  }
}

// block_q5_K { f16 d; f16 dmin; u8 scales[12]; u8 qh[32]; u8 qs[128]; }: as Q4_K, with bit
// `sub` of qh[l] as the 5th bit of element l of sub-block `sub`.
void dequantize_q5_k(const uint8_t* __restrict x, int64_t n_blocks, float* __restrict y) {
  const float* half = half_table();
  for (int64_t i = 0; i < n_blocks; ++i, x += 176) {
    const float d = half[load_u16(x)];
    const float dmin = half[load_u16(x + 2)];
    const uint8_t* scales = x + 4;
    const uint8_t* qh = x + 16;
    const uint8_t* ql = x + 48;
    for (int sub = 0; sub < 8; sub += 2, ql += 32, y += 64) {
      uint8_t scale, min;
      scale_min_k4(sub, scales, &scale, &min);
      const float d1 = d * scale, m1 = dmin * min;
      scale_min_k4(sub + 1, scales, &scale, &min);
      const float d2 = d * scale, m2 = dmin * min;
      const int shift1 = sub, shift2 = sub + 1;
      for (int l = 0; l < 32; ++l) {
        y[l] = d1 * ((ql[l] & 0x0F) + (((qh[l] >> shift1) & 1) << 4)) - m1;
      }
      for (int l = 0; l < 32; ++l) {
        y[l + 32] = d2 * ((ql[l] >> 4) + (((qh[l] >> shift2) & 1) << 4)) - m2;
      }
    }
  }
}

// block_q6_K { u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d; }: ggml computes d * sc * q left
// to right, i.e. (d * sc) * q; the 16 products d * sc are hoisted out of the element loop.
void dequantize_q6_k(const uint8_t* __restrict x, int64_t n_blocks, float* __restrict y) {
  const float* half = half_table();
  for (int64_t i = 0; i < n_blocks; ++i, x += 210) {
    const uint8_t* ql = x;
    const uint8_t* qh = x + 128;
    const int8_t* scales = reinterpret_cast<const int8_t*>(x + 192);
    const float d = half[load_u16(x + 208)];
    float ds[16];
    for (int s = 0; s < 16; ++s) ds[s] = d * scales[s];
    for (int half_block = 0; half_block < 2; ++half_block, ql += 64, qh += 32, y += 128) {
      const float* sc = ds + 8 * half_block;
      for (int l = 0; l < 32; ++l) {
        const int is = l / 16;
        const int q1 = ((ql[l] & 0x0F) | (((qh[l] >> 0) & 3) << 4)) - 32;
        const int q2 = ((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) - 32;
        const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        y[l] = sc[is + 0] * q1;
        y[l + 32] = sc[is + 2] * q2;
        y[l + 64] = sc[is + 4] * q3;
        y[l + 96] = sc[is + 6] * q4;
      }
    }
  }
}

BlockKernel kernel_for(GgmlType type) {
  switch (type) {
    case GgmlType::F32: return dequantize_f32;
    case GgmlType::F16: return dequantize_f16;
    case GgmlType::BF16: return dequantize_bf16;
    case GgmlType::Q8_0: return dequantize_q8_0;
    case GgmlType::Q4_0: return dequantize_q4_0;
    case GgmlType::Q4_1: return dequantize_q4_1;
    case GgmlType::Q5_0: return dequantize_q5_0;
    case GgmlType::Q5_1: return dequantize_q5_1;
    case GgmlType::Q4_K: return dequantize_q4_k;
    case GgmlType::Q5_K: return dequantize_q5_k;
    case GgmlType::Q6_K: return dequantize_q6_k;
    default: return nullptr;
  }
}

// Work per task: large enough that scheduling is noise, small enough to balance 2-64 threads.
constexpr int64_t kElementsPerTask = 1 << 16;

}  // namespace

const GgmlTypeInfo* find_ggml_type(uint32_t id) {
  for (const GgmlTypeInfo& info : kGgmlTypes) {
    if (static_cast<uint32_t>(info.type) == id) return &info;
  }
  return nullptr;
}

const GgmlTypeInfo& ggml_type_info(GgmlType type) {
  const GgmlTypeInfo* info = find_ggml_type(static_cast<uint32_t>(type));
  if (info == nullptr) {
    throw internal_error("ggml type id " + std::to_string(static_cast<uint32_t>(type)) +
                         " is not in the type table");
  }
  return *info;
}

std::string ggml_type_name(GgmlType type) { return ggml_type_info(type).name; }

std::string ggml_dequantizable_type_names() {
  std::vector<std::string> names;
  for (const GgmlTypeInfo& info : kGgmlTypes) {
    if (info.dequantizable) names.emplace_back(info.name);
  }
  return join(names, ", ");
}

float fp16_to_fp32(uint16_t bits) {
  const uint32_t f32_bits = fp16_bits_to_fp32_bits(bits);
  float value;
  std::memcpy(&value, &f32_bits, sizeof(value));
  return value;
}

void dequantize_to_float(GgmlType type, const uint8_t* data, int64_t n_elements, float* out) {
  const GgmlTypeInfo& info = ggml_type_info(type);
  const BlockKernel kernel = kernel_for(type);
  if (kernel == nullptr || !info.dequantizable) {
    throw bad_input(std::string("tensor type ") + info.name + " is not supported; supported: " +
                    ggml_dequantizable_type_names());
  }
  if (n_elements < 0 || n_elements % info.block_size != 0) {
    throw internal_error("dequantize_to_float: " + std::to_string(n_elements) +
                         " elements is not a whole number of " + info.name + " blocks");
  }
  const int64_t n_blocks = n_elements / info.block_size;
  const int64_t grain = std::max<int64_t>(1, kElementsPerTask / info.block_size);
  half_table();  // built here, before the workers start, so none of them waits for it
  at::parallel_for(0, n_blocks, grain, [&](int64_t begin, int64_t end) {
    kernel(data + begin * info.type_size, end - begin, out + begin * info.block_size);
  });
}

}  // namespace retort
