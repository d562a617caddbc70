// Device query where LibTorch is not a CUDA build (no CUDA runtime headers): asks LibTorch only.
#include <ATen/detail/CUDAHooksInterface.h>

#include "train/device_info.h"

namespace retort {

DeviceReport query_devices() {
  DeviceReport report;
  report.built_with_cuda_kernels = cuda_kernels_built();
  report.libtorch_has_cuda = at::detail::getCUDAHooks().isBuilt();
  const int count = report.libtorch_has_cuda ? at::detail::getCUDAHooks().getNumGPUs() : 0;
  for (int index = 0; index < count; ++index) {
    GpuInfo gpu;
    gpu.index = index;
    gpu.name = "CUDA device " + std::to_string(index);
    report.gpus.push_back(gpu);
  }
  return report;
}

std::optional<int64_t> peak_gpu_memory_bytes(int) { return std::nullopt; }  // no CUDA runtime: not measured

}  // namespace retort
