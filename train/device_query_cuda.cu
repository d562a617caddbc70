// Device query through the CUDA runtime (compiled by nvcc when RETORT_CUDA=ON).
// A missing driver or GPU is reported as "no GPU", never as an error.
#include <cuda_runtime.h>

#include <ATen/detail/CUDAHooksInterface.h>

#include "train/device_info.h"

namespace retort {

DeviceReport query_devices() {
  DeviceReport report;
  report.built_with_cuda_kernels = true;
  report.libtorch_has_cuda = at::detail::getCUDAHooks().isBuilt();
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no driver" status
    return report;
  }
  for (int index = 0; index < count; ++index) {
    cudaDeviceProp props{};
    if (cudaGetDeviceProperties(&props, index) != cudaSuccess) continue;
    report.gpus.push_back(GpuInfo{index, props.name, props.major, props.minor,
                                  props.multiProcessorCount,
                                  static_cast<int64_t>(props.totalGlobalMem)});
  }
  return report;
}

}  // namespace retort
