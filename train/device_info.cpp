// Device report shared by the CUDA and CPU-only builds.
#include "train/device_info.h"

#include "generated/retort_build_config.h"

#include <cstdio>

namespace retort {

std::string describe_cuda(const DeviceReport& report) {
  if (!report.libtorch_has_cuda) return "no (LibTorch built without CUDA)";
  if (report.gpus.empty()) return "no (no GPU visible; running on CPU)";
  std::string out = "yes (" + std::to_string(report.gpus.size()) + " GPU" +
                    (report.gpus.size() > 1 ? "s" : "") + ": ";
  for (size_t i = 0; i < report.gpus.size(); ++i) {
    const GpuInfo& gpu = report.gpus[i];
    char memory[32];
    std::snprintf(memory, sizeof(memory), "%.1f GiB",
                  static_cast<double>(gpu.total_memory_bytes) / (1024.0 * 1024.0 * 1024.0));
    if (i > 0) out += "; ";
    out += gpu.name + ", sm_" + std::to_string(gpu.compute_major) +
           std::to_string(gpu.compute_minor) + ", " + memory;
  }
  out += ")";
  return out;
}

std::string describe_build(const DeviceReport& report) {
  std::string out = "own CUDA kernels: ";
  out += report.built_with_cuda_kernels ? "yes" : "no (built without nvcc; LibTorch's CUDA kernels still run)";
  out += "; NCCL: ";
  out += !report.nccl_version.empty() ? "yes (" + report.nccl_version + ")" : "no";
  return out;
}

bool cuda_kernels_built() {
  return RETORT_CUDA_KERNELS != 0;
}

}  // namespace retort
