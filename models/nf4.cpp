// NF4 quantization operation for operation as bitsandbytes 0.50 runs it on the CPU, so codes and
// block maxima equal its quantize_4bit(..., blocksize=64, compress_statistics=True,
// quant_type="nf4") bit for bit (tests/test_nf4.cpp checks against bitsandbytes itself):
//  - 4-bit codes (its torch reference kernel): x * (1 / absmax) clamped to [-1, 1], then the
//    first code whose midpoint to the next code is >= the value (torch.bucketize);
//  - 8-bit absmax codes (its C++ CPU kernel): (x - offset) / blockmax, nearest dynamic-map value,
//    ties to the lower one.
#include "models/nf4.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <vector>

#include "io/error.h"

namespace retort {
namespace {

// The NormalFloat values as float32 (the QLoRA paper's Appendix E list, as bitsandbytes holds it).
constexpr std::array<float, 16> kNf4Values = {
    -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f, -0.28444138169288635f,
    -0.18477343022823334f, -0.09105003625154495f, 0.0f, 0.07958029955625534f, 0.16093020141124725f,
    0.24611230194568634f, 0.33791524171829224f, 0.44070982933044434f, 0.5626170039176941f,
    0.7229568362236023f, 1.0f};

// Midpoints between neighbouring NF4 values, in float32 as torch computes (a + b) / 2.
std::array<float, 15> nf4_midpoints() {
  std::array<float, 15> midpoints{};
  for (size_t i = 0; i < midpoints.size(); ++i) midpoints[i] = (kNf4Values[i] + kNf4Values[i + 1]) / 2.0f;
  return midpoints;
}

// create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8): for exponent i = 0..6, the
// midpoints of linspace(0.1, 1, 2^i + 1) in float32 times 10^(i - 6), both signs; then 0 and 1.
// ATen computes the linspace and the float32 products exactly as torch does in Python.
std::array<float, 256> make_dynamic_map() {
  std::vector<float> values;
  for (int i = 0; i < 7; ++i) {
    const at::Tensor bounds = at::linspace(0.1, 1, (int64_t{1} << i) + 1, at::kFloat);
    const at::Tensor means = (bounds.slice(0, 0, -1) + bounds.slice(0, 1)) / 2.0;
    const at::Tensor scaled = i == 6 ? means : means * std::pow(10.0, i - 6);
    for (int64_t j = 0; j < scaled.numel(); ++j) {
      const float value = scaled[j].item<float>();
      values.push_back(value);
      values.push_back(-value);
    }
  }
  values.push_back(0.0f);
  values.push_back(1.0f);
  if (values.size() != 256) throw internal_error("the dynamic map has " + std::to_string(values.size()) + " values");
  std::sort(values.begin(), values.end());
  std::array<float, 256> map{};
  std::copy(values.begin(), values.end(), map.begin());
  return map;
}

// The nearest map value to `value` (ties to the lower index), as bitsandbytes' quantize_block.
uint8_t nearest_dynamic_code(const std::array<float, 256>& map, float value) {
  // The last index whose value is <= `value` (0 when below all), then the right neighbour if closer.
  int64_t index = std::upper_bound(map.begin(), map.end(), value) - map.begin() - 1;
  index = std::max<int64_t>(index, 0);
  if (index < 255 && std::fabs(value - map[index + 1]) < std::fabs(value - map[index])) ++index;
  return static_cast<uint8_t>(index);
}

// Blockwise 8-bit quantization of `values` (float32) with the dynamic map, blocks of 256.
void quantize_absmax(const at::Tensor& values, at::Tensor& codes, at::Tensor& scales) {
  const auto& map = dynamic_map_values();
  const int64_t n = values.numel(), blocks = (n + kNf4AbsmaxBlockSize - 1) / kNf4AbsmaxBlockSize;
  codes = at::empty({n}, at::kByte);
  scales = at::empty({blocks}, at::kFloat);
  const float* in = values.data_ptr<float>();
  uint8_t* out = codes.data_ptr<uint8_t>();
  float* scale = scales.data_ptr<float>();
  for (int64_t block = 0; block < blocks; ++block) {
    const int64_t begin = block * kNf4AbsmaxBlockSize, end = std::min(n, begin + kNf4AbsmaxBlockSize);
    float blockmax = -FLT_MAX;
    for (int64_t i = begin; i < end; ++i) blockmax = std::fmax(blockmax, std::fabs(in[i]));
    scale[block] = blockmax;
    for (int64_t i = begin; i < end; ++i) out[i] = nearest_dynamic_code(map, blockmax > 0 ? in[i] / blockmax : 0.0f);
  }
}

}  // namespace

const std::array<float, 16>& nf4_code_values() { return kNf4Values; }

const std::array<float, 256>& dynamic_map_values() {
  static const std::array<float, 256> map = make_dynamic_map();
  return map;
}

Nf4Tensor quantize_nf4(const at::Tensor& weight) {
  const int64_t n = weight.numel();
  if (n == 0 || n % kNf4BlockSize != 0) {
    throw bad_input("NF4 needs a multiple of " + std::to_string(kNf4BlockSize) + " values, the tensor has " +
                    std::to_string(n));
  }
  const at::Tensor values = weight.detach().to(at::kCPU, at::kFloat).contiguous();
  const int64_t blocks = n / kNf4BlockSize;
  Nf4Tensor result;
  result.codes = at::empty({n / 2}, at::kByte);
  at::Tensor absmax = at::empty({blocks}, at::kFloat);
  const float* in = values.data_ptr<float>();
  uint8_t* codes = result.codes.data_ptr<uint8_t>();
  float* block_max = absmax.data_ptr<float>();
  static const std::array<float, 15> midpoints = nf4_midpoints();
  at::parallel_for(0, blocks, 64, [&](int64_t begin, int64_t end) {
    for (int64_t block = begin; block < end; ++block) {
      const float* x = in + block * kNf4BlockSize;
      float m = 0.0f;
      for (int64_t i = 0; i < kNf4BlockSize; ++i) m = std::max(m, std::fabs(x[i]));
      block_max[block] = m;
      const float inverse = 1.0f / std::max(m, 1e-38f);
      uint8_t* out = codes + block * kNf4BlockSize / 2;
      for (int64_t i = 0; i < kNf4BlockSize; i += 2) {
        uint8_t pair[2];
        for (int k = 0; k < 2; ++k) {
          const float scaled = std::clamp(x[i + k] * inverse, -1.0f, 1.0f);
          pair[k] = static_cast<uint8_t>(std::lower_bound(midpoints.begin(), midpoints.end(), scaled) - midpoints.begin());
        }
        out[i / 2] = static_cast<uint8_t>(pair[0] << 4 | pair[1]);
      }
    }
  });
  result.absmax_offset = absmax.mean().reshape({1});
  quantize_absmax(absmax - result.absmax_offset, result.absmax_codes, result.absmax_scales);
  return result;
}

at::Tensor nf4_block_absmax(const Nf4Tensor& tensor) {
  const auto& map = dynamic_map_values();
  const at::Tensor table = at::from_blob(const_cast<float*>(map.data()), {256}, at::kFloat)
                               .to(tensor.absmax_codes.device());
  const int64_t blocks = tensor.absmax_codes.numel();
  const at::Tensor scales = tensor.absmax_scales.repeat_interleave(kNf4AbsmaxBlockSize).narrow(0, 0, blocks);
  return table.index_select(0, tensor.absmax_codes.to(at::kLong)).mul_(scales).add_(tensor.absmax_offset);
}

void dequantize_nf4_into(const at::Tensor& codes, const at::Tensor& block_absmax, float* out, int64_t numel) {
  const uint8_t* in = codes.data_ptr<uint8_t>();
  const float* absmax = block_absmax.data_ptr<float>();
  at::parallel_for(0, numel / kNf4BlockSize, 16, [&](int64_t begin, int64_t end) {
    for (int64_t block = begin; block < end; ++block) {
      const float scale = absmax[block];
      const uint8_t* x = in + block * kNf4BlockSize / 2;
      float* y = out + block * kNf4BlockSize;
      for (int64_t i = 0; i < kNf4BlockSize / 2; ++i) {
        y[2 * i] = kNf4Values[x[i] >> 4] * scale;
        y[2 * i + 1] = kNf4Values[x[i] & 0x0F] * scale;
      }
    }
  });
}

at::Tensor dequantize_nf4(const Nf4Tensor& tensor, int64_t numel) {
  const at::Tensor table = at::from_blob(const_cast<float*>(kNf4Values.data()), {16}, at::kFloat)
                               .to(tensor.codes.device());
  const at::Tensor bytes = tensor.codes.reshape({-1}).to(at::kLong);
  const at::Tensor nibbles = at::stack({bytes.bitwise_right_shift(4), bytes.bitwise_and(15)}, 1).reshape({-1});
  const at::Tensor values = table.index_select(0, nibbles).reshape({-1, kNf4BlockSize});
  return values.mul_(nf4_block_absmax(tensor).unsqueeze(1)).reshape({numel});
}

}  // namespace retort
