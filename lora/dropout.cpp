#include "lora/dropout.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include <cmath>
#include <mutex>

namespace retort {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

inline uint64_t splitmix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

// out[i] = in[i] * scale where kept, 0 where dropped; the same (seed, threshold) gives the same mask.
at::Tensor masked_scale(const at::Tensor& input, uint64_t seed, uint32_t threshold, float scale) {
  const at::Tensor in = input.contiguous();
  at::Tensor out = at::empty_like(in);
  const float* src = in.const_data_ptr<float>();
  float* dst = out.mutable_data_ptr<float>();
  const int64_t n = in.numel();
  const int64_t words = (n + 3) / 4;
  at::parallel_for(0, words, 4096, [&](int64_t begin, int64_t end) {
    const int64_t full_end = std::min(end, n / 4);  // words whose four elements all exist
    for (int64_t w = begin; w < full_end; ++w) {
      const uint64_t bits = splitmix64(seed + static_cast<uint64_t>(w + 1) * 0x9E3779B97F4A7C15ULL);
      const float* in4 = src + w * 4;
      float* out4 = dst + w * 4;
      out4[0] = (static_cast<uint32_t>(bits) & 0xFFFFu) >= threshold ? in4[0] * scale : 0.0f;
      out4[1] = (static_cast<uint32_t>(bits >> 16) & 0xFFFFu) >= threshold ? in4[1] * scale : 0.0f;
      out4[2] = (static_cast<uint32_t>(bits >> 32) & 0xFFFFu) >= threshold ? in4[2] * scale : 0.0f;
      out4[3] = (static_cast<uint32_t>(bits >> 48) & 0xFFFFu) >= threshold ? in4[3] * scale : 0.0f;
    }
    for (int64_t w = std::max(begin, full_end); w < end; ++w) {  // the last, partial word
      const uint64_t bits = splitmix64(seed + static_cast<uint64_t>(w + 1) * 0x9E3779B97F4A7C15ULL);
      for (int64_t k = 0; w * 4 + k < n; ++k) {
        const uint32_t draw = static_cast<uint32_t>(bits >> (16 * k)) & 0xFFFFu;
        dst[w * 4 + k] = draw >= threshold ? src[w * 4 + k] * scale : 0.0f;
      }
    }
  });
  return out;
}

struct CounterDropout : public torch::autograd::Function<CounterDropout> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& input, double p) {
    uint64_t seed = 0;
    {
      auto* generator = at::check_generator<at::CPUGeneratorImpl>(at::detail::getDefaultCPUGenerator());
      std::lock_guard<std::mutex> lock(generator->mutex_);
      seed = generator->random64();
    }
    const uint32_t threshold = static_cast<uint32_t>(std::lround(p * 65536.0));
    const float scale = static_cast<float>(1.0 / (1.0 - static_cast<double>(threshold) / 65536.0));
    ctx->saved_data["seed"] = static_cast<int64_t>(seed);
    ctx->saved_data["threshold"] = static_cast<int64_t>(threshold);
    ctx->saved_data["scale"] = static_cast<double>(scale);
    return masked_scale(input, seed, threshold, scale);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto seed = static_cast<uint64_t>(ctx->saved_data["seed"].toInt());
    const auto threshold = static_cast<uint32_t>(ctx->saved_data["threshold"].toInt());
    const auto scale = static_cast<float>(ctx->saved_data["scale"].toDouble());
    return {masked_scale(grad_outputs[0], seed, threshold, scale), at::Tensor()};
  }
};

}  // namespace

at::Tensor lora_dropout(const at::Tensor& input, double p) {
  if (p <= 0) return input;
  if (!input.device().is_cpu() || input.scalar_type() != at::kFloat || p >= 1) return at::dropout(input, p, true);
  return CounterDropout::apply(input, p);
}

}  // namespace retort
