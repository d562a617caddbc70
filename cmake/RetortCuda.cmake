# RETORT_CUDA compiles the project's own .cu files with nvcc. Default: ON when nvcc is found.
# With no GPU at run time everything falls back to CPU.
find_program(RETORT_NVCC nvcc HINTS /usr/local/cuda/bin ENV CUDA_HOME PATH_SUFFIXES bin)
if(RETORT_NVCC)
  set(_cuda_default ON)
else()
  set(_cuda_default OFF)
endif()
option(RETORT_CUDA "Compile Retort's CUDA kernels" ${_cuda_default})
if(RETORT_CUDA)
  if(NOT CMAKE_CUDA_COMPILER AND RETORT_NVCC)
    set(CMAKE_CUDA_COMPILER "${RETORT_NVCC}")
  endif()
  # LibTorch's config turns TORCH_CUDA_ARCH_LIST into -gencode flags on its targets,
  # which reach our .cu files too; CMAKE_CUDA_ARCHITECTURES stays OFF so the two never clash.
  set(CMAKE_CUDA_ARCHITECTURES OFF)
  enable_language(CUDA)
  set(CMAKE_CUDA_STANDARD 20)
  find_package(CUDAToolkit REQUIRED)
  message(STATUS "RETORT_CUDA=ON: nvcc ${CMAKE_CUDA_COMPILER_VERSION}, archs ${TORCH_CUDA_ARCH_LIST}")
else()
  message(STATUS "RETORT_CUDA=OFF: no project CUDA kernels (LibTorch's own CUDA still works)")
endif()
