// lora_dropout: the keep rate and scale of inverted dropout, a backward pass that uses the same
// mask, reproducibility from the generator's seed, and independence from the thread count.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "lora/dropout.h"

namespace retort {
namespace {

TEST(LoraDropout, KeepsOneMinusPScaledAndBackwardUsesTheSameMask) {
  at::manual_seed(3);
  const double p = 0.1;
  const at::Tensor x = (at::rand({1000, 1000}) + 0.5).requires_grad_(true);
  const at::Tensor y = lora_dropout(x, p);
  const at::Tensor kept = y != 0;
  const double rate = kept.to(at::kDouble).mean().item<double>();
  const double expected = 1.0 - std::lround(p * 65536) / 65536.0;
  EXPECT_NEAR(rate, expected, 4 * std::sqrt(p * (1 - p) / 1e6));  // 4 sigma
  const double scale = 1.0 / expected;
  EXPECT_TRUE(at::allclose(y.masked_select(kept), x.masked_select(kept) * scale, 1e-6, 0));
  const at::Tensor upstream = at::randn({1000, 1000});
  (y * upstream).sum().backward();
  EXPECT_TRUE(at::allclose(x.grad(), upstream * kept.to(at::kFloat) * scale, 1e-6, 1e-6));
  // Mask bits are not shared between neighbouring rows or columns in any visible pattern.
  EXPECT_NEAR(kept.narrow(1, 0, 500).to(at::kDouble).mean().item<double>(), expected, 0.005);
  EXPECT_NEAR(kept.narrow(0, 0, 500).to(at::kDouble).mean().item<double>(), expected, 0.005);
}

TEST(LoraDropout, ReproducibleFromTheGeneratorAndThreadCountIndependent) {
  const at::Tensor x = at::ones({257, 333});
  at::manual_seed(11);
  const at::Tensor first = lora_dropout(x, 0.05);
  const at::Tensor second = lora_dropout(x, 0.05);
  EXPECT_FALSE(at::equal(first, second));  // each call draws a new seed
  const int threads = at::get_num_threads();
  at::set_num_threads(1);
  at::manual_seed(11);
  const at::Tensor single = lora_dropout(x, 0.05);
  at::set_num_threads(threads);
  EXPECT_TRUE(at::equal(first, single));
  EXPECT_TRUE(at::equal(lora_dropout(x, 0.0), x));
}

}  // namespace
}  // namespace retort
