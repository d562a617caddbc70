// What accelerator this process can use: for `retort --version`, device selection
// and MFU figures (peak FLOP/s depends on the part).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace retort {

struct GpuInfo {
  int index = 0;
  std::string name;
  int compute_major = 0;
  int compute_minor = 0;
  int multiprocessors = 0;
  int64_t total_memory_bytes = 0;
};

struct DeviceReport {
  bool built_with_cuda_kernels = false;  // RETORT_CUDA: Retort's own .cu files compiled in (nvcc)
  bool libtorch_has_cuda = false;         // LibTorch was built with CUDA
  std::string nccl_version;               // c10d's NCCL process group compiled in: NCCL's version; else ""
  std::vector<GpuInfo> gpus;              // empty when no usable GPU
  bool cuda_usable() const { return !gpus.empty(); }
};

// Never throws and never prints: no GPU (or no driver) is an ordinary answer.
DeviceReport query_devices();

// The most memory the CUDA caching allocator has reserved on GPU `index` so far (what a peak-memory
// figure on a GPU means here: torch.cuda.max_memory_reserved). nullopt without CUDA; call it only
// after the process has used that GPU.
std::optional<int64_t> peak_gpu_memory_bytes(int index);

// One line for humans, e.g. "yes (1 GPU: NVIDIA H100 80GB HBM3, sm_90, 79.1 GiB)".
std::string describe_cuda(const DeviceReport& report);

// What this binary was built with, e.g. "own CUDA kernels: no (built without nvcc); NCCL: yes (2.27.7)".
std::string describe_build(const DeviceReport& report);

// Whether this build compiled Retort's .cu files (RETORT_CUDA).
bool cuda_kernels_built();

}  // namespace retort
