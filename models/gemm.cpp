#include "models/gemm.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <torch/csrc/autograd/custom_function.h>

#include <atomic>
#include <cstdlib>
#include <mutex>
#include <utility>

#include "io/error.h"

// Exported by libtorch_cpu (TORCH_API) but its header is not in the wheel: result = beta * result
// + alpha * mat1 @ mat2, float32 in strict IEEE mode unless torch's float32 precision is lowered.
namespace at::native {
TORCH_API void mkldnn_matmul(const at::Tensor& mat1, const at::Tensor& mat2, const at::Tensor& result, float beta,
                             float alpha);
}  // namespace at::native

namespace retort {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

std::atomic<int> chosen_backend{-1};
std::atomic<int64_t> onednn_min_product{kOneDnnMinProduct};
std::atomic<int64_t> onednn_calls{0};

void onednn_matmul(const at::Tensor& a, const at::Tensor& b, const at::Tensor& out, float beta) {
  onednn_calls.fetch_add(1, std::memory_order_relaxed);
  at::native::mkldnn_matmul(a, b, out, beta, 1.0f);
}

// oneDNN's primitive cache and ideep's (its C++ wrapper inside libtorch) each keep up to 1024
// primitives by default, and a primitive holds 1-4 MB (JIT code, buffers): a run whose token counts
// vary (padding to the longest row, the loss's last chunk, one teacher sequence at a time) made one
// per count (measured: 680 MB for 200 counts of one product; up to GBs at 1024). A training step
// uses fewer than 32 distinct products (measured: 32 costs no speed, 16 costs 3%). Both read these
// once, at their first use; a user's value wins.
void bound_onednn_caches() {
  setenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "32", /*overwrite=*/0);
  setenv("LRU_CACHE_CAPACITY", "32", /*overwrite=*/0);
}

// At static initialisation: setenv is unsafe while other threads read the environment, and
// before main() there are none.
[[maybe_unused]] const bool onednn_caches_bounded = (bound_onednn_caches(), true);

// oneDNN refuses float32 on processors without AVX-512 (mkldnn_matmul throws): try it once.
bool onednn_usable() {
  try {
    const at::Tensor a = at::ones({32, 32});
    const at::Tensor out = at::empty({32, 32});
    at::native::mkldnn_matmul(a, a, out, 0.0f, 1.0f);
    return out.equal(at::full({32, 32}, 32.0f));
  } catch (const c10::Error&) {
    return false;
  }
}

bool intel_processor() {
#if defined(__x86_64__) && defined(__GNUC__)
  return __builtin_cpu_is("intel");
#else
  return true;  // not x86: keep ATen's choice
#endif
}

CpuGemm choose_backend() {
  if (const char* forced = std::getenv("RETORT_CPU_GEMM"); forced != nullptr && *forced != '\0') {
    const std::string name = forced;
    if (name == "blas") return CpuGemm::kBlas;
    if (name == "onednn") {
      if (!cpu_onednn_available()) throw bad_input("RETORT_CPU_GEMM=onednn: oneDNN's float32 matmul is not usable on this CPU (it needs AVX-512)");
      return CpuGemm::kOneDnn;
    }
    throw bad_input("RETORT_CPU_GEMM=" + name + ": expected blas or onednn");
  }
  return (!intel_processor() && cpu_onednn_available()) ? CpuGemm::kOneDnn : CpuGemm::kBlas;
}

// The fast path applies to float32 CPU products big enough to amortise oneDNN's per-call cost.
// `product` = M * K * N of a product of `a` (any operand) by `b`.
bool use_onednn(const at::Tensor& a, const at::Tensor& b, int64_t product) {
  if (!a.device().is_cpu() || a.scalar_type() != at::kFloat || b.scalar_type() != at::kFloat) return false;
  if (product < onednn_min_product.load(std::memory_order_relaxed)) return false;
  return cpu_gemm_backend() == CpuGemm::kOneDnn;
}

bool use_onednn(const at::Tensor& a, const at::Tensor& b) { return use_onednn(a, b, a.size(0) * a.size(1) * b.size(1)); }

// Both functions below save only what their backward needs: x for dW, the weight for dX.
void save_linear_inputs(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight) {
  const bool want_x = x.requires_grad(), want_weight = weight.requires_grad();
  ctx->saved_data["want_x"] = want_x;
  ctx->saved_data["want_weight"] = want_weight;
  ctx->save_for_backward({want_weight ? x : at::Tensor(), want_x ? weight : at::Tensor()});
}

// {dX = dY W, dW = dY^T X} for y = x @ weight^T, each undefined when not wanted.
std::pair<at::Tensor, at::Tensor> linear_gradients(AutogradContext* ctx, const at::Tensor& grad_y) {
  const variable_list saved = ctx->get_saved_variables();
  at::Tensor grad_x, grad_weight;
  if (ctx->saved_data["want_x"].toBool()) grad_x = matmul_2d(grad_y, saved[1]);
  if (ctx->saved_data["want_weight"].toBool()) grad_weight = matmul_2d(grad_y.t(), saved[0]);
  return {grad_x, grad_weight};
}

// x [M, in] @ weight^T [in, out].
struct LinearFunction : public torch::autograd::Function<LinearFunction> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight) {
    save_linear_inputs(ctx, x, weight);
    return matmul_2d(x, weight.t());
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    auto [grad_x, grad_weight] = linear_gradients(ctx, grad_outputs[0].contiguous());
    return {grad_x, grad_weight};
  }
};

// base [M, out] + x [M, in] @ weight^T.
struct LinearAddFunction : public torch::autograd::Function<LinearAddFunction> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& base, const at::Tensor& x, const at::Tensor& weight) {
    save_linear_inputs(ctx, x, weight);
    at::Tensor out = base.clone(at::MemoryFormat::Contiguous);
    matmul_into(x, weight.t(), out, /*accumulate=*/true);
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const at::Tensor grad = grad_outputs[0].contiguous();  // [M, out]
    auto [grad_x, grad_weight] = linear_gradients(ctx, grad);
    return {grad, grad_x, grad_weight};
  }
};

// input [..., in] x weight [out, in]: M * K * N = input.numel() * out, the same for the forward
// product and both backward ones.
bool onednn_linear(const at::Tensor& input, const at::Tensor& weight) {
  return input.dim() >= 1 && use_onednn(input, weight, input.numel() * weight.size(0));
}

}  // namespace

CpuGemm cpu_gemm_backend() {
  int value = chosen_backend.load();
  if (value < 0) {
    static std::mutex choosing;
    std::lock_guard<std::mutex> lock(choosing);
    value = chosen_backend.load();
    if (value < 0) {
      value = static_cast<int>(choose_backend());
      chosen_backend.store(value);
    }
  }
  return static_cast<CpuGemm>(value);
}

bool cpu_onednn_available() {
  static const bool available = onednn_usable();
  return available;
}

void set_cpu_gemm_backend(CpuGemm backend, int64_t min_product) {
  if (backend == CpuGemm::kOneDnn && !cpu_onednn_available()) {
    throw bad_input("oneDNN's float32 matmul is not usable on this CPU (it needs AVX-512)");
  }
  chosen_backend.store(static_cast<int>(backend));
  onednn_min_product.store(min_product);
}

int64_t cpu_onednn_calls() { return onednn_calls.load(); }

std::string cpu_gemm_name(CpuGemm backend) { return backend == CpuGemm::kOneDnn ? "onednn" : "blas"; }

void matmul_into(const at::Tensor& a, const at::Tensor& b, const at::Tensor& out, bool accumulate) {
  if (use_onednn(a, b)) {
    onednn_matmul(a, b, out, accumulate ? 1.0f : 0.0f);
  } else if (accumulate) {
    out.addmm_(a, b);
  } else {
    at::mm_out(const_cast<at::Tensor&>(out), a, b);
  }
}

at::Tensor matmul_2d(const at::Tensor& a, const at::Tensor& b) {
  if (!use_onednn(a, b)) return at::mm(a, b);
  at::Tensor out = at::empty({a.size(0), b.size(1)}, a.options());
  onednn_matmul(a, b, out, 0.0f);
  return out;
}

at::Tensor gemm_linear(const at::Tensor& input, const at::Tensor& weight, const std::optional<at::Tensor>& bias) {
  if (!onednn_linear(input, weight)) return at::linear(input, weight, bias);
  std::vector<int64_t> shape = input.sizes().vec();
  const at::Tensor x = input.reshape({-1, weight.size(1)});
  shape.back() = weight.size(0);
  const bool grad = at::GradMode::is_enabled() &&
                    (input.requires_grad() || weight.requires_grad() || (bias && bias->requires_grad()));
  at::Tensor out = grad ? LinearFunction::apply(x, weight) : matmul_2d(x, weight.t());
  if (bias) out = grad ? out + *bias : out.add_(*bias);
  return out.view(shape);
}

at::Tensor gemm_linear_add(const at::Tensor& base, const at::Tensor& input, const at::Tensor& weight) {
  const int64_t out_features = weight.size(0);
  const at::Tensor base_2d = base.reshape({-1, out_features});
  const at::Tensor x = input.reshape({-1, weight.size(1)});
  at::Tensor out;
  if (!onednn_linear(input, weight) || base.scalar_type() != at::kFloat) {
    out = at::addmm(base_2d, x, weight.t());
  } else if (at::GradMode::is_enabled() && (base.requires_grad() || input.requires_grad() || weight.requires_grad())) {
    out = LinearAddFunction::apply(base_2d, x, weight);
  } else {
    out = base_2d.clone(at::MemoryFormat::Contiguous);
    matmul_into(x, weight.t(), out, /*accumulate=*/true);
  }
  return out.view(base.sizes());
}

}  // namespace retort
