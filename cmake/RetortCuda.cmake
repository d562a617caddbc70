# RETORT_CUDA compiles the project's own .cu files with nvcc. Default: ON when nvcc is found
# (RETORT_NVCC, looked up in RetortTorch.cmake). Without it, CUDA host code still compiles
# (RETORT_CUDA_HOST) and LibTorch's own CUDA kernels run; with no GPU at run time everything
# falls back to CPU.
if(RETORT_NVCC)
  set(_cuda_default ON)
else()
  set(_cuda_default OFF)
endif()
option(RETORT_CUDA "Compile Retort's CUDA kernels" ${_cuda_default})
if(RETORT_CUDA)
  set(RETORT_CUDA_KERNELS_VALUE 1)
else()
  set(RETORT_CUDA_KERNELS_VALUE 0)
endif()
if(RETORT_CUDA)
  if(NOT CMAKE_CUDA_COMPILER AND RETORT_NVCC)
    set(CMAKE_CUDA_COMPILER "${RETORT_NVCC}")
  endif()
  if(RETORT_TORCH_CMAKE_CONFIG)
    # LibTorch's config turns TORCH_CUDA_ARCH_LIST into -gencode flags on its targets,
    # which reach our .cu files too; CMAKE_CUDA_ARCHITECTURES stays OFF so the two never clash.
    set(CMAKE_CUDA_ARCHITECTURES OFF)
  else()
    set(CMAKE_CUDA_ARCHITECTURES "80-real;90-real;100-real;120")  # TORCH_CUDA_ARCH_LIST's default
  endif()
  enable_language(CUDA)
  set(CMAKE_CUDA_STANDARD 20)
  find_package(CUDAToolkit REQUIRED)
  message(STATUS "RETORT_CUDA=ON: nvcc ${CMAKE_CUDA_COMPILER_VERSION}, archs ${TORCH_CUDA_ARCH_LIST}")
else()
  message(STATUS "RETORT_CUDA=OFF: no project CUDA kernels (LibTorch's own CUDA still works; "
                 "CUDA host code: ${RETORT_CUDA_HOST})")
endif()

# What the binary says about itself (`retort --version`), without a global compile flag (the
# shared precompiled header stays the same for every build kind).
configure_file("${CMAKE_CURRENT_LIST_DIR}/build_config.h.in" "${CMAKE_BINARY_DIR}/generated/retort_build_config.h" @ONLY)
