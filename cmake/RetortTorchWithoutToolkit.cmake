# LibTorch's imported targets without its CMake config's CUDA discovery (no CUDA toolkit here).
# Caffe2Targets.cmake, the wheel's own export of c10, torch_cpu, torch_cuda and torch, references
# three targets that the config's helper scripts would define:
#   torch::cudart          the CUDA runtime: libcudart from the nvidia-cuda-runtime wheel, whose
#                          include/ holds cuda_runtime_api.h; the crt/ headers it includes come
#                          from nvidia-cuda-crt (requirements.txt);
#   caffe2::mkl            MKL's headers and libraries; LibTorch carries MKL inside libtorch_cpu,
#                          so nothing is needed to link against it;
#   protobuf::libprotobuf  unused by the shared libraries (the config defines a dummy too).
# Inputs: RETORT_TORCH_ROOT (the torch package folder), RETORT_NVIDIA_WHEELS (site-packages/nvidia).
# Outputs as find_package(Torch): Torch_VERSION, TORCH_LIBRARIES, TORCH_INCLUDE_DIRS, TORCH_CXX_FLAGS.
set(_caffe2_dir "${RETORT_TORCH_ROOT}/share/cmake/Caffe2")
set(_cuda_wheel "${RETORT_NVIDIA_WHEELS}/cu13")
if(NOT EXISTS "${_caffe2_dir}/Caffe2Targets.cmake")
  message(FATAL_ERROR "${RETORT_TORCH_ROOT} has no share/cmake/Caffe2/Caffe2Targets.cmake; is torch installed whole?")
endif()

if(NOT TARGET torch::cudart)
  file(GLOB _cudart "${_cuda_wheel}/lib/libcudart.so.*")
  if(NOT _cudart OR NOT EXISTS "${_cuda_wheel}/include/cuda_runtime_api.h"
     OR NOT EXISTS "${_cuda_wheel}/include/crt/host_defines.h")
    message(FATAL_ERROR "No CUDA toolkit, and the CUDA runtime wheels at ${_cuda_wheel} are incomplete (need "
                        "lib/libcudart.so.*, include/cuda_runtime_api.h from nvidia-cuda-runtime and "
                        "include/crt/host_defines.h from nvidia-cuda-crt): run `make setup`, or install the "
                        "CUDA 13 toolkit.")
  endif()
  list(GET _cudart 0 _cudart)
  add_library(torch::cudart INTERFACE IMPORTED)
  set_target_properties(torch::cudart PROPERTIES
    INTERFACE_INCLUDE_DIRECTORIES "${_cuda_wheel}/include"
    INTERFACE_SYSTEM_INCLUDE_DIRECTORIES "${_cuda_wheel}/include"
    INTERFACE_LINK_LIBRARIES "${_cudart}")
endif()
if(NOT TARGET caffe2::mkl)
  add_library(caffe2::mkl INTERFACE IMPORTED)
endif()
if(NOT TARGET protobuf::libprotobuf)
  add_library(retort_protobuf_unused INTERFACE)
  add_library(protobuf::libprotobuf ALIAS retort_protobuf_unused)
endif()

include("${_caffe2_dir}/Caffe2Targets.cmake")

file(STRINGS "${RETORT_TORCH_ROOT}/include/torch/headeronly/version.h" _version_lines
     REGEX "#define TORCH_VERSION_(MAJOR|MINOR|PATCH) [0-9]+")
foreach(_part MAJOR MINOR PATCH)
  string(REGEX MATCH "TORCH_VERSION_${_part} ([0-9]+)" _match "${_version_lines}")
  set(_torch_${_part} "${CMAKE_MATCH_1}")
endforeach()
set(Torch_VERSION "${_torch_MAJOR}.${_torch_MINOR}.${_torch_PATCH}")
if(Torch_VERSION VERSION_LESS 2.11)
  message(FATAL_ERROR "LibTorch ${Torch_VERSION} at ${RETORT_TORCH_ROOT}; Retort needs 2.11")
endif()

# What TorchConfig.cmake sets for a shared CUDA build (torch pulls torch_cpu and torch_cuda in
# with --no-as-needed, so LibTorch's CUDA kernels register and run when a GPU is there).
set(TORCH_INCLUDE_DIRS "${RETORT_TORCH_ROOT}/include" "${RETORT_TORCH_ROOT}/include/torch/csrc/api/include")
set(TORCH_LIBRARIES torch torch_library "${RETORT_TORCH_ROOT}/lib/libc10.so" c10_cuda)
set(TORCH_CXX_FLAGS "")
set_target_properties(torch PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${TORCH_INCLUDE_DIRS}")
