// models/gemm: float32 CPU products through either backend (MKL via ATen, oneDNN) against the
// same products in float64, forward and every gradient, including the layouts backward uses.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <fstream>
#include <vector>

#include "finetune/sft_step.h"
#include "lora/lora.h"
#include "models/gemm.h"
#include "models/loader.h"
#include "tests/test_support.h"
#include "tests/test_support_fixtures.h"

namespace retort {
namespace {

std::vector<CpuGemm> backends() {
  std::vector<CpuGemm> list = {CpuGemm::kBlas};
  if (cpu_onednn_available()) list.push_back(CpuGemm::kOneDnn);
  return list;
}

// Switches the backend, for products of any size, and restores the process's choice after.
struct BackendScope {
  CpuGemm saved = cpu_gemm_backend();
  explicit BackendScope(CpuGemm backend) { set_cpu_gemm_backend(backend, /*min_product=*/0); }
  ~BackendScope() { set_cpu_gemm_backend(saved); }
};

double relative_error(const at::Tensor& value, const at::Tensor& exact) {
  return (value.to(at::kDouble) - exact).abs().max().item<double>() / exact.abs().max().item<double>();
}

TEST(CpuGemm, ProductsAndAccumulationMatchFloat64InEveryLayout) {
  at::manual_seed(1);
  for (CpuGemm backend : backends()) {
    SCOPED_TRACE(cpu_gemm_name(backend));
    BackendScope scope(backend);
    const at::Tensor a = at::randn({70, 90}), b = at::randn({90, 50});
    const at::Tensor exact = at::mm(a.to(at::kDouble), b.to(at::kDouble));
    EXPECT_LT(relative_error(matmul_2d(a, b), exact), 1e-5);
    // Transposed views, as backward passes them (dY^T X, dY W).
    const at::Tensor a_t = a.t().contiguous().t(), b_t = b.t().contiguous().t();
    EXPECT_LT(relative_error(matmul_2d(a_t, b_t), exact), 1e-5);
    at::Tensor out = at::randn({70, 50});
    const at::Tensor before = out.to(at::kDouble);
    matmul_into(a, b_t, out, /*accumulate=*/true);
    EXPECT_LT(relative_error(out, before + exact), 1e-5);
    matmul_into(a_t, b, out);
    EXPECT_LT(relative_error(out, exact), 1e-5);
    // Rows of a larger buffer (the chunked loss writes its input gradient this way).
    at::Tensor rows = at::zeros({100, 50});
    matmul_into(a, b, rows.narrow(0, 20, 70));
    EXPECT_LT(relative_error(rows.narrow(0, 20, 70), exact), 1e-5);
    EXPECT_EQ(rows.narrow(0, 0, 20).abs().sum().item<double>(), 0.0);
  }
}

TEST(CpuGemm, LinearForwardAndGradientsMatchFloat64) {
  at::manual_seed(2);
  const at::Tensor x0 = at::randn({3, 40, 64}), w0 = at::randn({48, 64}) * 0.1, b0 = at::randn({48});
  const at::Tensor upstream = at::randn({3, 40, 48});
  auto reference = [&](bool bias) {
    const at::Tensor x = x0.to(at::kDouble).requires_grad_(true), w = w0.to(at::kDouble).requires_grad_(true);
    const at::Tensor b = b0.to(at::kDouble).requires_grad_(true);
    const at::Tensor y = bias ? at::linear(x, w, b) : at::linear(x, w);
    (y * upstream.to(at::kDouble)).sum().backward();
    return std::vector<at::Tensor>{y.detach(), x.grad(), w.grad(), b.grad()};
  };
  const std::vector<at::Tensor> without_bias = reference(false), with_bias = reference(true);
  for (CpuGemm backend : backends()) {
    SCOPED_TRACE(cpu_gemm_name(backend));
    BackendScope scope(backend);
    for (bool bias : {false, true}) {
      const std::vector<at::Tensor>& exact = bias ? with_bias : without_bias;
      const at::Tensor x = x0.clone().requires_grad_(true), w = w0.clone().requires_grad_(true);
      const at::Tensor b = b0.clone().requires_grad_(true);
      const at::Tensor y = gemm_linear(x, w, bias ? std::optional<at::Tensor>(b) : std::nullopt);
      ASSERT_EQ(y.sizes(), exact[0].sizes());
      (y * upstream).sum().backward();
      EXPECT_LT(relative_error(y, exact[0]), 1e-5);
      EXPECT_LT(relative_error(x.grad(), exact[1]), 1e-5);
      EXPECT_LT(relative_error(w.grad(), exact[2]), 1e-5);
      if (bias) {
        EXPECT_LT(relative_error(b.grad(), exact[3]), 1e-5);
      }
    }
    // A frozen weight (LoRA's base layer) and a non-contiguous input: only the input's gradient.
    const at::Tensor x = x0.transpose(0, 1).contiguous().transpose(0, 1).requires_grad_(true);
    const at::Tensor y = gemm_linear(x, w0);
    (y * upstream).sum().backward();
    EXPECT_LT(relative_error(x.grad(), without_bias[1]), 1e-5);
    // Without autograd the same numbers come back, no graph attached.
    at::NoGradGuard no_grad;
    const at::Tensor plain = gemm_linear(x0, w0);
    EXPECT_FALSE(plain.requires_grad());
    EXPECT_LT(relative_error(plain, without_bias[0]), 1e-5);
  }
}

TEST(CpuGemm, LinearAddAccumulatesIntoACopyOfTheBase) {
  at::manual_seed(3);
  const at::Tensor base0 = at::randn({2, 30, 48}), x0 = at::randn({2, 30, 16}), w0 = at::randn({48, 16});
  const at::Tensor upstream = at::randn({2, 30, 48});
  const at::Tensor base_d = base0.to(at::kDouble).requires_grad_(true), x_d = x0.to(at::kDouble).requires_grad_(true);
  const at::Tensor w_d = w0.to(at::kDouble).requires_grad_(true);
  const at::Tensor exact = base_d + at::linear(x_d, w_d);
  (exact * upstream.to(at::kDouble)).sum().backward();
  for (CpuGemm backend : backends()) {
    SCOPED_TRACE(cpu_gemm_name(backend));
    BackendScope scope(backend);
    const at::Tensor base = base0.clone().requires_grad_(true), x = x0.clone().requires_grad_(true);
    const at::Tensor w = w0.clone().requires_grad_(true);
    const at::Tensor y = gemm_linear_add(base * 1.0, x, w);  // a non-leaf base, as a layer's output
    (y * upstream).sum().backward();
    EXPECT_LT(relative_error(y, exact.detach()), 1e-5);
    EXPECT_LT(relative_error(base.grad(), base_d.grad()), 1e-6);
    EXPECT_LT(relative_error(x.grad(), x_d.grad()), 1e-5);
    EXPECT_LT(relative_error(w.grad(), w_d.grad()), 1e-5);
  }
}

// Every product of a training step (projections, LoRA's down and accumulated up products, the
// chunked loss's output projection and its gradients) through oneDNN gives ATen's loss and
// gradients; ATen's are checked against transformers by the model parity tests.
TEST(CpuGemm, TrainingStepLossAndGradientsAgreeAcrossBackends) {
  if (!cpu_onednn_available()) GTEST_SKIP() << "oneDNN's float32 matmul needs AVX-512";
  at::manual_seed(4);
  const at::Tensor ids = at::randint(1, 64, {2, 16}, at::kLong);
  for (bool lora : {false, true}) {
    SCOPED_TRACE(lora ? "LoRA" : "full");
    auto run = [&](CpuGemm backend) {
      BackendScope scope(backend);
      const LoadedModel loaded = load_model((test::fixture_dir("training") / "base").string());
      if (lora) load_peft_adapter(*loaded.model, (test::fixture_dir("training") / "lora_init").string());
      SftStep step(*loaded.model);
      at::manual_seed(5);  // the same LoRA dropout masks
      const StepResult result = step.forward({ids, ids.clone(), {}, {}, {}});
      (result.loss_sum / static_cast<double>(result.tokens)).backward();
      std::vector<at::Tensor> values = {result.loss_sum.detach()};
      for (const at::Tensor& parameter : step.trainable_parameters()) values.push_back(parameter.grad().clone());
      return values;
    };
    const std::vector<at::Tensor> aten = run(CpuGemm::kBlas);
    const int64_t calls_before = cpu_onednn_calls();
    const std::vector<at::Tensor> onednn = run(CpuGemm::kOneDnn);
    // 7 projections x 2 layers + the output projection, forward and backward.
    EXPECT_GE(cpu_onednn_calls() - calls_before, 3 * 15);
    ASSERT_EQ(aten.size(), onednn.size());
    ASSERT_GT(aten.size(), 1u);
    for (size_t i = 0; i < aten.size(); ++i) {
      const double scale = std::max(aten[i].abs().max().item<double>(), 1e-12);
      EXPECT_LT((onednn[i] - aten[i]).abs().max().item<double>() / scale, 1e-5) << "value " << i;
    }
  }
}

double resident_mb() {
  std::ifstream statm("/proc/self/statm");
  long pages = 0, resident = 0;
  statm >> pages >> resident;
  return static_cast<double>(resident) * 4096.0 / (1024.0 * 1024.0);
}

// Every distinct product shape costs oneDNN and ideep a cached primitive of 1-4 MB; with their
// default capacity (1024 each) 200 token counts of one weight gradient grew memory by 680 MB.
TEST(CpuGemm, ManyDistinctTokenCountsKeepMemoryBounded) {
  if (!cpu_onednn_available()) GTEST_SKIP() << "oneDNN's float32 matmul needs AVX-512";
  BackendScope scope(CpuGemm::kOneDnn);
  auto weight_gradient = [](int64_t tokens) {
    const at::Tensor grad_y = at::randn({tokens, 1536}), x = at::randn({tokens, 576});
    return matmul_2d(grad_y.t(), x).sum().item<double>();  // [1536, 576], summed over `tokens`
  };
  weight_gradient(1000);
  const double before = resident_mb();
  for (int64_t tokens = 400; tokens < 1000; tokens += 3) weight_gradient(tokens);
  // Measured: 150 MB with the bound (the 64 primitives kept), 680 MB without.
  EXPECT_LT(resident_mb() - before, 300.0);
}

TEST(CpuGemm, OtherDtypesKeepATensPath) {
  // float64 never takes the oneDNN path: bit-identical to at::linear whatever the backend.
  const at::Tensor x = at::randn({5, 32}, at::kDouble), w = at::randn({24, 32}, at::kDouble);
  for (CpuGemm backend : backends()) {
    BackendScope scope(backend);
    EXPECT_TRUE(at::equal(gemm_linear(x, w), at::linear(x, w)));
  }
}

}  // namespace
}  // namespace retort
