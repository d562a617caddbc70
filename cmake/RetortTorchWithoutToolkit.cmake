# LibTorch's imported targets without its CMake config's CUDA discovery (no CUDA toolkit here).
# Caffe2Targets.cmake, the wheel's own export of c10, torch_cpu, torch_cuda and torch, references
# three targets that the config's helper scripts would define:
#   torch::cudart          the CUDA runtime: libcudart from the nvidia-cuda-runtime wheel
#                          (include/ holds cuda_runtime_api.h and the rest of the runtime headers);
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
  if(NOT _cudart OR NOT EXISTS "${_cuda_wheel}/include/cuda_runtime_api.h")
    message(FATAL_ERROR "No CUDA toolkit and no CUDA runtime wheel at ${_cuda_wheel} (lib/libcudart.so.*, "
                        "include/cuda_runtime_api.h): run `make setup`, or install the CUDA 13 toolkit.")
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

file(STRINGS "${RETORT_TORCH_ROOT}/include/torch/headeronly/version.h" _version_line
     REGEX "#define TORCH_VERSION \"")
string(REGEX MATCH "\"([0-9.]+)" _version_match "${_version_line}")
set(Torch_VERSION "${CMAKE_MATCH_1}")
if(Torch_VERSION VERSION_LESS 2.11)
  message(FATAL_ERROR "LibTorch ${Torch_VERSION} at ${RETORT_TORCH_ROOT}; Retort needs 2.11")
endif()

# What TorchConfig.cmake sets for a shared CUDA build (torch pulls torch_cpu and torch_cuda in
# with --no-as-needed, so LibTorch's CUDA kernels register and run when a GPU is there).
set(TORCH_INCLUDE_DIRS "${RETORT_TORCH_ROOT}/include" "${RETORT_TORCH_ROOT}/include/torch/csrc/api/include")
set(TORCH_LIBRARIES torch torch_library "${RETORT_TORCH_ROOT}/lib/libc10.so" c10_cuda)
set(TORCH_CXX_FLAGS "")
set_target_properties(torch PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${TORCH_INCLUDE_DIRS}")
