// Device query through the CUDA runtime: host code, compiled wherever LibTorch is a CUDA build
// (with a CUDA toolkit or with only the nvidia-* runtime wheels). A missing driver or GPU is
// reported as "no GPU", never as an error.
#include <cuda_runtime_api.h>

#include <ATen/detail/CUDAHooksInterface.h>
#include <c10/cuda/CUDACachingAllocator.h>
#if defined(USE_C10D_NCCL) && __has_include(<nccl.h>)
#include <torch/csrc/distributed/c10d/NCCLUtils.hpp>
#define RETORT_HAVE_NCCL 1
#endif

#include "train/device_info.h"

namespace retort {

DeviceReport query_devices() {
  DeviceReport report;
  report.built_with_cuda_kernels = cuda_kernels_built();
  report.libtorch_has_cuda = at::detail::getCUDAHooks().isBuilt();
#ifdef RETORT_HAVE_NCCL
  report.nccl_version = c10d::getNcclVersion();  // the library LibTorch loaded; no GPU needed
#endif
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

std::optional<int64_t> peak_gpu_memory_bytes(int index) {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || index < 0 || index >= count) {
    cudaGetLastError();
    return std::nullopt;
  }
  const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(static_cast<c10::DeviceIndex>(index));
  return stats.reserved_bytes[static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE)].peak;
}

}  // namespace retort
