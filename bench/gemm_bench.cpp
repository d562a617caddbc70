// float32 CPU matrix products of a training step's shapes, LibTorch's at::mm (MKL in the wheel)
// against oneDNN (models/gemm.h), each layout a linear layer's forward and backward use:
//   retort_bench_gemm [--threads N] [--tokens M] [--hidden H] [--ffn F] [--vocab V] [--rank R]
//                     [--only blas|onednn]   (one backend, for its peak RSS alone)
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <sys/resource.h>

#include <chrono>
#include <functional>
#include <cstdio>
#include <string>
#include <vector>

#include "models/gemm.h"

namespace {

double seconds_per_call(const std::function<void()>& call) {
  call();
  int calls = 0;
  const auto start = std::chrono::steady_clock::now();
  double elapsed = 0;
  while (elapsed < 0.3 || calls < 3) {
    call();
    ++calls;
    elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  return elapsed / calls;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace retort;
  int64_t threads = 2, tokens = 1024, hidden = 768, ffn = 2048, vocab = 49152, rank = 16;
  std::string only;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--only") {
      only = argv[i + 1];
      continue;
    }
    const int64_t value = std::stoll(argv[i + 1]);
    if (flag == "--threads") threads = value;
    else if (flag == "--tokens") tokens = value;
    else if (flag == "--hidden") hidden = value;
    else if (flag == "--ffn") ffn = value;
    else if (flag == "--vocab") vocab = value;
    else if (flag == "--rank") rank = value;
    else {
      std::fprintf(stderr, "unknown flag %s\n", flag.c_str());
      return 2;
    }
  }
  at::set_num_threads(static_cast<int>(threads));
  struct Shape {
    const char* what;
    int64_t m, k, n;
  };
  const std::vector<Shape> shapes = {
      {"attention proj", tokens, hidden, hidden}, {"mlp up", tokens, hidden, ffn},   {"mlp down", tokens, ffn, hidden},
      {"output proj", tokens, hidden, vocab},     {"lora down", tokens, hidden, rank}, {"lora up", tokens, rank, hidden},
  };
  std::printf("%-15s %-6s %6s %6s %6s %10s %10s %7s\n", "layer", "layout", "M", "K", "N", "blas GF/s", "onednn GF/s",
              "speed");
  double blas_total = 0, onednn_total = 0;
  for (const Shape& s : shapes) {
    // forward Y = X W^T, backward dX = dY W, dW = dY^T X: as [M, K] x [K, N] products.
    struct Layout {
      const char* name;
      at::Tensor a, b;
    };
    const at::Tensor x = at::randn({s.m, s.k}), w = at::randn({s.n, s.k}), dy = at::randn({s.m, s.n});
    const std::vector<Layout> layouts = {{"fwd", x, w.t()}, {"dX", dy, w}, {"dW", dy.t(), x}};
    for (const Layout& layout : layouts) {
      const int64_t m = layout.a.size(0), k = layout.a.size(1), n = layout.b.size(1);
      at::Tensor out = at::empty({m, n});
      const double flops = 2.0 * static_cast<double>(m * k * n);
      auto time_backend = [&](CpuGemm backend) {
        if (!only.empty() && only != cpu_gemm_name(backend)) return 1.0;
        set_cpu_gemm_backend(backend, 0);
        return seconds_per_call([&] { matmul_into(layout.a, layout.b, out); });
      };
      const double blas = time_backend(CpuGemm::kBlas);
      const at::Tensor reference = out.clone();
      const double onednn = time_backend(CpuGemm::kOneDnn);
      const double error = (out - reference).abs().max().item<double>() / reference.abs().max().item<double>();
      blas_total += blas;
      onednn_total += onednn;
      std::printf("%-15s %-6s %6ld %6ld %6ld %10.1f %10.1f %6.2fx  (max rel diff %.1e)\n", s.what, layout.name,
                  static_cast<long>(m), static_cast<long>(k), static_cast<long>(n), flops / blas / 1e9,
                  flops / onednn / 1e9, blas / onednn, error);
    }
  }
  std::printf("all shapes: %.2fx\n", blas_total / onednn_total);
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  std::printf("peak RSS %.0f MB\n", static_cast<double>(usage.ru_maxrss) / 1024.0);
  return 0;
}
