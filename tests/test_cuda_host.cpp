// CUDA host code without nvcc: the CUDA runtime API and c10d's NCCL process group compile and
// link wherever LibTorch is a CUDA build, with a CUDA toolkit or with only the nvidia-* wheels
// torch installs (the build with the toolkit hidden runs these too). No GPU is needed: without
// one (or without a driver) the runtime reports no device, and NCCL still reports its version.
#include <gtest/gtest.h>

#include <string>

#include "tests/test_support.h"
#include "train/device_info.h"

#if __has_include(<cuda_runtime_api.h>)
#include <cuda_runtime_api.h>
#define RETORT_TEST_CUDA_HOST 1
#endif
#if defined(USE_C10D_NCCL) && __has_include(<nccl.h>)
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#define RETORT_TEST_NCCL 1
#endif

namespace retort {
namespace {

TEST(CudaHost, TheRuntimeApiCountsTheSameGpusAsTheDeviceReport) {
#ifdef RETORT_TEST_CUDA_HOST
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();
    count = 0;
  }
  EXPECT_EQ(static_cast<size_t>(count), query_devices().gpus.size());
#else
  EXPECT_FALSE(query_devices().libtorch_has_cuda) << "a CUDA LibTorch without cuda_runtime_api.h on the include path";
#endif
}

TEST(CudaHost, NcclProcessGroupCompilesAndNcclReportsTheHeadersVersion) {
#ifdef RETORT_TEST_NCCL
  const auto options = c10d::ProcessGroupNCCL::Options::create();
  EXPECT_FALSE(options->is_high_priority_stream);
  EXPECT_EQ(c10d::getNcclVersionNumber(), NCCL_VERSION_CODE) << "the NCCL library loaded is not the one whose header we built with";
  const DeviceReport report = query_devices();
  EXPECT_EQ(report.nccl_version, c10d::getNcclVersion());
  const auto version = test::run_retort({"--version"});
  EXPECT_NE(version.out.find("NCCL: yes (" + report.nccl_version + ")"), std::string::npos) << version.out;
#else
  EXPECT_TRUE(query_devices().nccl_version.empty());
#endif
}

TEST(CudaHost, VersionSaysWhichKindOfBuildThisIs) {
  const auto version = test::run_retort({"--version"});
  ASSERT_EQ(version.exit_code, 0) << version.err;
  const std::string kernels = cuda_kernels_built() ? "own CUDA kernels: yes" : "own CUDA kernels: no (built without nvcc";
  EXPECT_NE(version.out.find("Build: " + kernels), std::string::npos) << version.out;
}

}  // namespace
}  // namespace retort
