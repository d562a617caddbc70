// LibTorch smoke test against hand-computed values: a matmul and its gradients.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <torch/autograd.h>

namespace {

TEST(TorchSmoke, MatmulAndGradientMatchHandComputedValues) {
  // A = [[1, 2], [3, 4]], B = [[5, 6], [7, 8]]; A@B = [[19, 22], [43, 50]].
  at::Tensor a = at::tensor({1.0, 2.0, 3.0, 4.0}, at::kDouble).reshape({2, 2}).set_requires_grad(true);
  at::Tensor b = at::tensor({5.0, 6.0, 7.0, 8.0}, at::kDouble).reshape({2, 2}).set_requires_grad(true);
  at::Tensor product = at::matmul(a, b);
  const double expected[2][2] = {{19, 22}, {43, 50}};
  for (int i = 0; i < 2; ++i) {
    for (int j = 0; j < 2; ++j) EXPECT_DOUBLE_EQ(product[i][j].item<double>(), expected[i][j]);
  }
  // L = sum(W * (A@B)) with W = [[1, 0], [0, 2]]:
  // dL/dA = W @ B^T = [[5, 7], [12, 16]], dL/dB = A^T @ W = [[1, 6], [2, 8]].
  at::Tensor weights = at::tensor({1.0, 0.0, 0.0, 2.0}, at::kDouble).reshape({2, 2});
  (product * weights).sum().backward();
  const double grad_a[2][2] = {{5, 7}, {12, 16}};
  const double grad_b[2][2] = {{1, 6}, {2, 8}};
  for (int i = 0; i < 2; ++i) {
    for (int j = 0; j < 2; ++j) {
      EXPECT_DOUBLE_EQ(a.grad()[i][j].item<double>(), grad_a[i][j]) << i << "," << j;
      EXPECT_DOUBLE_EQ(b.grad()[i][j].item<double>(), grad_b[i][j]) << i << "," << j;
    }
  }
}

TEST(TorchSmoke, Float32MatmulAgreesWithFloat64) {
  at::manual_seed(0);
  at::Tensor a = at::randn({64, 96});
  at::Tensor b = at::randn({96, 32});
  at::Tensor reference = at::matmul(a.to(at::kDouble), b.to(at::kDouble));
  EXPECT_LT((at::matmul(a, b).to(at::kDouble) - reference).abs().max().item<double>(), 1e-4);
}

}  // namespace
