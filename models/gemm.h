// Matrix products on the CPU in float32, routed to oneDNN where LibTorch's default BLAS is slow.
// LibTorch's CPU wheel sends float32 at::mm to MKL, which on AMD processors runs an AVX2 code
// path: on this project's AMD EPYC (Zen 5, AVX-512) oneDNN's float32 matmul (the library is inside
// libtorch_cpu, strict float32 math, no reduced precision) does the same products about 2x faster
// (bench/retort_bench_gemm). Everything here is exact float32 arithmetic; only the summation
// order inside a product differs from MKL's. Other devices and dtypes go to ATen unchanged.
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>
#include <string>

namespace retort {

enum class CpuGemm { kBlas, kOneDnn };

// The backend float32 CPU products use. Chosen once per process: RETORT_CPU_GEMM=blas|onednn,
// else oneDNN on x86 processors not made by Intel that oneDNN's float32 matmul supports (AVX-512),
// else the BLAS (MKL on Intel is as fast as oneDNN, and it is what LibTorch uses).
CpuGemm cpu_gemm_backend();
// Below this many multiply-adds (M * K * N) oneDNN's fixed cost per call outweighs its speed
// (LoRA's rank-16 products of fewer than ~128 tokens), so smaller products stay on the BLAS.
constexpr int64_t kOneDnnMinProduct = int64_t{1} << 20;
// Benchmarks and tests: tests lower `min_product` to send a tiny model's products to oneDNN.
void set_cpu_gemm_backend(CpuGemm backend, int64_t min_product = kOneDnnMinProduct);
// Whether oneDNN's float32 matmul runs on this processor (it needs AVX-512).
bool cpu_onednn_available();
std::string cpu_gemm_name(CpuGemm backend);
// How many products this process has sent to oneDNN (tests check a path really uses it).
int64_t cpu_onednn_calls();

// out = a @ b, or out += a @ b when `accumulate`. a [M, K], b [K, N], out [M, N] (contiguous);
// a and b may be transposed views. No autograd.
void matmul_into(const at::Tensor& a, const at::Tensor& b, const at::Tensor& out, bool accumulate = false);
// a @ b as a new [M, K] x [K, N] -> [M, N] tensor. No autograd.
at::Tensor matmul_2d(const at::Tensor& a, const at::Tensor& b);

// at::linear(input, weight, bias) with autograd: [..., in] x [out, in] -> [..., out]. Its forward
// and backward products (dX = dY W, dW = dY^T X) go through matmul_into.
at::Tensor gemm_linear(const at::Tensor& input, const at::Tensor& weight, const std::optional<at::Tensor>& bias = std::nullopt);

// base + input @ weight^T with autograd, the product accumulated into a copy of `base` in one
// GEMM (LoRA's up-projection adds onto the base layer's output this way). base [..., out].
at::Tensor gemm_linear_add(const at::Tensor& base, const at::Tensor& input, const at::Tensor& weight);

}  // namespace retort
