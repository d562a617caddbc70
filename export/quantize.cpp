// Reference quantizers, written to reproduce ggml-quants.c's quantize_row_*_ref exactly: the
// same float operations in the same order (this file is compiled with -ffp-contract=off so no
// fused multiply-add changes a rounding), the same nearest_int trick, the same search loops.
#include "export/quantize.h"

#include <ATen/Parallel.h>
#include <c10/util/Half.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "io/error.h"

namespace retort {
namespace {

constexpr int kQK = 32;
constexpr int kQK_K = 256;
constexpr float kGroupMaxEps = 1e-15f;

// ggml's nearest_int: adding 1.5 * 2^23 leaves the rounded integer in the low mantissa bits
// (round half to even, valid for |x| <= 2^22).
inline int nearest_int(float value) {
  const float shifted = value + 12582912.f;
  int32_t bits;
  std::memcpy(&bits, &shifted, sizeof bits);
  return (bits & 0x007fffff) - 0x00400000;
}

inline void store_f16(uint8_t* out, float value) {
  const uint16_t bits = fp32_to_fp16(value);
  std::memcpy(out, &bits, 2);
}

inline float f16_round_trip(float value) { return fp16_to_fp32(fp32_to_fp16(value)); }

// The element of largest magnitude, keeping its sign (the first one on ties).
inline float signed_absmax(const float* x, int n) {
  float amax = 0.f, max = 0.f;
  for (int j = 0; j < n; ++j) {
    if (amax < std::fabs(x[j])) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  }
  return max;
}

// block_q8_0 { f16 d; int8 qs[32]; }
void quantize_block_q8_0(const float* x, uint8_t* out) {
  float amax = 0.f;
  for (int j = 0; j < kQK; ++j) amax = std::max(amax, std::fabs(x[j]));
  const float d = amax / ((1 << 7) - 1);
  const float id = d != 0.f ? 1.0f / d : 0.0f;
  store_f16(out, d);
  for (int j = 0; j < kQK; ++j) out[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(std::roundf(x[j] * id)));
}

// block_q4_0 { f16 d; uint8 qs[16]; }: byte j holds element j (low nibble) and j + 16 (high).
void quantize_block_q4_0(const float* x, uint8_t* out) {
  const float max = signed_absmax(x, kQK);
  const float d = max / -8;
  const float id = d != 0.f ? 1.0f / d : 0.0f;
  store_f16(out, d);
  for (int j = 0; j < kQK / 2; ++j) {
    const float x0 = x[j] * id;
    const float x1 = x[kQK / 2 + j] * id;
    const uint8_t q0 = std::min<uint8_t>(15, static_cast<uint8_t>(static_cast<int8_t>(x0 + 8.5f)));
    const uint8_t q1 = std::min<uint8_t>(15, static_cast<uint8_t>(static_cast<int8_t>(x1 + 8.5f)));
    out[2 + j] = q0 | (q1 << 4);
  }
}

// block_q5_0 { f16 d; uint8 qh[4]; uint8 qs[16]; }: the fifth bits of all 32 values in qh.
void quantize_block_q5_0(const float* x, uint8_t* out) {
  const float max = signed_absmax(x, kQK);
  const float d = max / -16;
  const float id = d != 0.f ? 1.0f / d : 0.0f;
  store_f16(out, d);
  uint32_t qh = 0;
  for (int j = 0; j < kQK / 2; ++j) {
    const float x0 = x[j] * id;
    const float x1 = x[kQK / 2 + j] * id;
    const uint8_t q0 = std::min<uint8_t>(31, static_cast<uint8_t>(static_cast<int8_t>(x0 + 16.5f)));
    const uint8_t q1 = std::min<uint8_t>(31, static_cast<uint8_t>(static_cast<int8_t>(x1 + 16.5f)));
    out[6 + j] = (q0 & 0x0F) | ((q1 & 0x0F) << 4);
    qh |= ((q0 & 0x10u) >> 4) << (j + 0);
    qh |= ((q1 & 0x10u) >> 4) << (j + kQK / 2);
  }
  std::memcpy(out + 2, &qh, 4);
}

// block_q5_1 { f16 d; f16 m; uint8 qh[4]; uint8 qs[16]; }: min/max range with 32 levels.
void quantize_block_q5_1(const float* x, uint8_t* out) {
  float min = std::numeric_limits<float>::max();
  float max = -std::numeric_limits<float>::max();
  for (int j = 0; j < kQK; ++j) {
    if (x[j] < min) min = x[j];
    if (x[j] > max) max = x[j];
  }
  const float d = (max - min) / ((1 << 5) - 1);
  const float id = d != 0.f ? 1.0f / d : 0.0f;
  store_f16(out, d);
  store_f16(out + 2, min);
  uint32_t qh = 0;
  for (int j = 0; j < kQK / 2; ++j) {
    const float x0 = (x[j] - min) * id;
    const float x1 = (x[kQK / 2 + j] - min) * id;
    const uint8_t q0 = static_cast<uint8_t>(x0 + 0.5f);
    const uint8_t q1 = static_cast<uint8_t>(x1 + 0.5f);
    out[8 + j] = (q0 & 0x0F) | ((q1 & 0x0F) << 4);
    qh |= ((q0 & 0x10u) >> 4) << (j + 0);
    qh |= ((q1 & 0x10u) >> 4) << (j + kQK / 2);
  }
  std::memcpy(out + 4, &qh, 4);
}

// make_qkx2_quants: an asymmetric (scale, min) fit of n values to [0, nmax], searching nstep
// scales around the plain range fit and keeping the lowest weighted squared error.
float fit_scale_min(int n, int nmax, const float* x, const float* weights, uint8_t* L, float* the_min,
                    uint8_t* Laux, float rmin, float rdelta, int nstep) {
  float min = x[0], max = x[0];
  float sum_w = weights[0];
  float sum_x = sum_w * x[0];
  for (int i = 1; i < n; ++i) {
    if (x[i] < min) min = x[i];
    if (x[i] > max) max = x[i];
    const float w = weights[i];
    sum_w += w;
    sum_x += w * x[i];
  }
  if (min > 0) min = 0;
  if (max == min) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    *the_min = -min;
    return 0.f;
  }
  float iscale = nmax / (max - min);
  float scale = 1 / iscale;
  float best_error = 0;
  for (int i = 0; i < n; ++i) {
    const int l = nearest_int(iscale * (x[i] - min));
    L[i] = static_cast<uint8_t>(std::max(0, std::min(nmax, l)));
    float diff = scale * L[i] + min - x[i];
    diff = diff * diff;
    best_error += weights[i] * diff;
  }
  for (int is = 0; is <= nstep; ++is) {
    iscale = (rmin + rdelta * is + nmax) / (max - min);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; ++i) {
      int l = nearest_int(iscale * (x[i] - min));
      l = std::max(0, std::min(nmax, l));
      Laux[i] = static_cast<uint8_t>(l);
      const float w = weights[i];
      sum_l += w * l;
      sum_l2 += w * l * l;
      sum_xl += w * l * x[i];
    }
    const float D = sum_w * sum_l2 - sum_l * sum_l;
    if (D > 0) {
      float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
      float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
      if (this_min > 0) {
        this_min = 0;
        this_scale = sum_xl / sum_l2;
      }
      float error = 0;
      for (int i = 0; i < n; ++i) {
        float diff = this_scale * Laux[i] + this_min - x[i];
        diff = diff * diff;
        error += weights[i] * diff;
      }
      if (error < best_error) {
        for (int i = 0; i < n; ++i) L[i] = Laux[i];
        best_error = error;
        scale = this_scale;
        min = this_min;
      }
    }
  }
  *the_min = -min;
  return scale;
}

// The super-block scale/min fit Q4_K and Q5_K share: 8 sub-blocks of 32 fitted to [0, nmax], their
// 6-bit scales and mins packed into `packed` (12 bytes) with the f16 super-scales at out[0..3].
// Returns the quant levels L[256] recomputed against the packed scales, as ggml does.
void fit_k_superblock(const float* x, int nmax, float rmin, float rdelta, int nstep, uint8_t* out, uint8_t* packed,
                      uint8_t* L) {
  uint8_t Laux[32];
  float weights[32];
  float mins[kQK_K / 32];
  float scales[kQK_K / 32];
  float max_scale = 0, max_min = 0;
  for (int j = 0; j < kQK_K / 32; ++j) {
    float sum_x2 = 0;
    for (int l = 0; l < 32; ++l) sum_x2 += x[32 * j + l] * x[32 * j + l];
    const float av_x = std::sqrt(sum_x2 / 32);
    for (int l = 0; l < 32; ++l) weights[l] = av_x + std::fabs(x[32 * j + l]);
    scales[j] = fit_scale_min(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], Laux, rmin, rdelta, nstep);
    max_scale = std::max(max_scale, scales[j]);
    max_min = std::max(max_min, mins[j]);
  }
  std::memset(packed, 0, 12);
  const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
  const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
  for (int j = 0; j < kQK_K / 32; ++j) {
    const uint8_t ls = std::min<uint8_t>(63, static_cast<uint8_t>(nearest_int(inv_scale * scales[j])));
    const uint8_t lm = std::min<uint8_t>(63, static_cast<uint8_t>(nearest_int(inv_min * mins[j])));
    if (j < 4) {
      packed[j] = ls;
      packed[j + 4] = lm;
    } else {
      packed[j + 4] = (ls & 0xF) | ((lm & 0xF) << 4);
      packed[j - 4] |= ((ls >> 4) << 6);
      packed[j - 0] |= ((lm >> 4) << 6);
    }
  }
  store_f16(out, max_scale / 63.f);
  store_f16(out + 2, max_min / 63.f);
  const float d_all = f16_round_trip(max_scale / 63.f);
  const float dmin_all = f16_round_trip(max_min / 63.f);
  for (int j = 0; j < kQK_K / 32; ++j) {
    uint8_t sc, m;
    if (j < 4) {
      sc = packed[j] & 63;
      m = packed[j + 4] & 63;
    } else {
      sc = (packed[j + 4] & 0xF) | ((packed[j - 4] >> 6) << 4);
      m = (packed[j + 4] >> 4) | ((packed[j - 0] >> 6) << 4);
    }
    const float d = d_all * sc;
    if (d == 0.f) continue;
    const float dm = dmin_all * m;
    for (int ii = 0; ii < 32; ++ii) {
      const int l = nearest_int((x[32 * j + ii] + dm) / d);
      L[32 * j + ii] = static_cast<uint8_t>(std::max(0, std::min(nmax, l)));
    }
  }
}

// block_q4_K { f16 d; f16 dmin; uint8 scales[12]; uint8 qs[128]; }
void quantize_block_q4_k(const float* x, uint8_t* out) {
  uint8_t L[kQK_K];
  fit_k_superblock(x, 15, -1.f, 0.1f, 20, out, out + 4, L);
  uint8_t* q = out + 16;
  for (int j = 0; j < kQK_K; j += 64) {
    for (int l = 0; l < 32; ++l) q[l] = L[j + l] | (L[j + l + 32] << 4);
    q += 32;
  }
}

// block_q5_K { f16 d; f16 dmin; uint8 scales[12]; uint8 qh[32]; uint8 qs[128]; }
void quantize_block_q5_k(const float* x, uint8_t* out) {
  uint8_t L[kQK_K];
  fit_k_superblock(x, 31, -0.5f, 0.1f, 15, out, out + 4, L);
  uint8_t* qh = out + 16;
  uint8_t* ql = out + 48;
  std::memset(qh, 0, kQK_K / 8);
  uint8_t m1 = 1, m2 = 2;
  for (int n = 0; n < kQK_K; n += 64) {
    for (int j = 0; j < 32; ++j) {
      int l1 = L[n + j];
      if (l1 > 15) {
        l1 -= 16;
        qh[j] |= m1;
      }
      int l2 = L[n + j + 32];
      if (l2 > 15) {
        l2 -= 16;
        qh[j] |= m2;
      }
      ql[j] = static_cast<uint8_t>(l1 | (l2 << 4));
    }
    m1 <<= 2;
    m2 <<= 2;
    ql += 32;
  }
}

// make_qx_quants with rmse_type 1: a symmetric scale for n values in [-nmax, nmax - 1],
// refined over 18 nearby scales by weighted (x^2) least squares.
float fit_symmetric_scale(int n, int nmax, const float* x, int8_t* L) {
  float max = 0, amax = 0;
  for (int i = 0; i < n; ++i) {
    const float ax = std::fabs(x[i]);
    if (ax > amax) {
      amax = ax;
      max = x[i];
    }
  }
  if (amax < kGroupMaxEps) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    return 0.f;
  }
  float iscale = -nmax / max;
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    int l = nearest_int(iscale * x[i]);
    l = std::max(-nmax, std::min(nmax - 1, l));
    L[i] = static_cast<int8_t>(l + nmax);
    const float w = x[i] * x[i];
    sumlx += w * x[i] * l;
    suml2 += w * l * l;
  }
  float scale = suml2 != 0.f ? sumlx / suml2 : 0.0f;
  float best = scale * sumlx;
  for (int is = -9; is <= 9; ++is) {
    if (is == 0) continue;
    iscale = -(nmax + 0.1f * is) / max;
    sumlx = suml2 = 0;
    for (int i = 0; i < n; ++i) {
      int l = nearest_int(iscale * x[i]);
      l = std::max(-nmax, std::min(nmax - 1, l));
      const float w = x[i] * x[i];
      sumlx += w * x[i] * l;
      suml2 += w * l * l;
    }
    if (suml2 > 0 && sumlx * sumlx > best * suml2) {
      for (int i = 0; i < n; ++i) {
        const int l = nearest_int(iscale * x[i]);
        L[i] = static_cast<int8_t>(nmax + std::max(-nmax, std::min(nmax - 1, l)));
      }
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
}

// block_q6_K { uint8 ql[128]; uint8 qh[64]; int8 scales[16]; f16 d; }
void quantize_block_q6_k(const float* x, uint8_t* out) {
  int8_t L[kQK_K];
  float scales[kQK_K / 16];
  float max_scale = 0, max_abs_scale = 0;
  for (int ib = 0; ib < kQK_K / 16; ++ib) {
    const float scale = fit_symmetric_scale(16, 32, x + 16 * ib, L + 16 * ib);
    scales[ib] = scale;
    const float abs_scale = std::fabs(scale);
    if (abs_scale > max_abs_scale) {
      max_abs_scale = abs_scale;
      max_scale = scale;
    }
  }
  std::memset(out, 0, 210);
  if (max_abs_scale < kGroupMaxEps) return;  // all zero: d = 0 and zero quants
  const float iscale = -128.f / max_scale;
  store_f16(out + 208, 1 / iscale);
  int8_t* block_scales = reinterpret_cast<int8_t*>(out + 192);
  for (int ib = 0; ib < kQK_K / 16; ++ib) {
    block_scales[ib] = static_cast<int8_t>(std::min(127, nearest_int(iscale * scales[ib])));
  }
  const float d_all = f16_round_trip(1 / iscale);
  for (int j = 0; j < kQK_K / 16; ++j) {
    const float d = d_all * block_scales[j];
    if (d == 0.f) continue;
    for (int ii = 0; ii < 16; ++ii) {
      int l = nearest_int(x[16 * j + ii] / d);
      l = std::max(-32, std::min(31, l));
      L[16 * j + ii] = static_cast<int8_t>(l + 32);
    }
  }
  uint8_t* ql = out;
  uint8_t* qh = out + 128;
  for (int j = 0; j < kQK_K; j += 128) {
    for (int l = 0; l < 32; ++l) {
      const uint8_t q1 = L[j + l + 0] & 0xF;
      const uint8_t q2 = L[j + l + 32] & 0xF;
      const uint8_t q3 = L[j + l + 64] & 0xF;
      const uint8_t q4 = L[j + l + 96] & 0xF;
      ql[l + 0] = q1 | (q3 << 4);
      ql[l + 32] = q2 | (q4 << 4);
      qh[l] = (L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) | ((L[j + l + 64] >> 4) << 4) | ((L[j + l + 96] >> 4) << 6);
    }
    ql += 64;
    qh += 32;
  }
}

using BlockQuantizer = void (*)(const float*, uint8_t*);

BlockQuantizer block_quantizer(GgmlType type) {
  switch (type) {
    case GgmlType::Q8_0: return quantize_block_q8_0;
    case GgmlType::Q4_0: return quantize_block_q4_0;
    case GgmlType::Q5_0: return quantize_block_q5_0;
    case GgmlType::Q5_1: return quantize_block_q5_1;
    case GgmlType::Q4_K: return quantize_block_q4_k;
    case GgmlType::Q5_K: return quantize_block_q5_k;
    case GgmlType::Q6_K: return quantize_block_q6_k;
    default: return nullptr;
  }
}

}  // namespace

uint16_t fp32_to_fp16(float value) { return c10::Half(value).x; }

uint16_t fp32_to_bf16(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, 4);
  if ((bits & 0x7fffffff) > 0x7f800000) return static_cast<uint16_t>((bits >> 16) | 64);
  return static_cast<uint16_t>((bits + (0x7fff + ((bits >> 16) & 1))) >> 16);
}

bool ggml_type_quantizable(GgmlType type) {
  return type == GgmlType::F32 || type == GgmlType::F16 || type == GgmlType::BF16 || block_quantizer(type) != nullptr;
}

std::string ggml_quantizable_type_names() { return "F32, F16, BF16, Q8_0, Q4_0, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K"; }

uint64_t ggml_row_bytes(GgmlType type, int64_t n_elements) {
  const GgmlTypeInfo& info = ggml_type_info(type);
  return static_cast<uint64_t>(n_elements / info.block_size) * static_cast<uint64_t>(info.type_size);
}

void quantize_from_float(GgmlType type, const float* values, int64_t n_elements, uint8_t* out) {
  const GgmlTypeInfo& info = ggml_type_info(type);
  if (n_elements % info.block_size != 0) {
    throw internal_error("quantize: " + std::to_string(n_elements) + " values are not whole " + info.name + " blocks");
  }
  const int64_t blocks = n_elements / info.block_size;
  const int64_t grain = std::max<int64_t>(1, 65536 / info.block_size);
  switch (type) {
    case GgmlType::F32:
      std::memcpy(out, values, n_elements * 4);
      return;
    case GgmlType::F16:
    case GgmlType::BF16: {
      const bool half = type == GgmlType::F16;
      at::parallel_for(0, n_elements, 65536, [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) {
          const uint16_t bits = half ? fp32_to_fp16(values[i]) : fp32_to_bf16(values[i]);
          std::memcpy(out + 2 * i, &bits, 2);
        }
      });
      return;
    }
    default: break;
  }
  const BlockQuantizer quantize_block = block_quantizer(type);
  if (quantize_block == nullptr) {
    throw internal_error(std::string("quantize: no quantizer for ") + info.name + "; supported: " +
                         ggml_quantizable_type_names());
  }
  at::parallel_for(0, blocks, grain, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) quantize_block(values + b * info.block_size, out + b * info.type_size);
  });
}

}  // namespace retort
