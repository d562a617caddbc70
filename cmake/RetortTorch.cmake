# LibTorch comes from the torch wheel in the project venv (or any Python given by
# RETORT_PYTHON, e.g. /opt/torch/.venv/bin/python on the GPU machine).
#
# Two ways in, the same libraries and compile definitions either way:
#  * a CUDA toolkit is installed (nvcc found): the wheel's own CMake config, find_package(Torch);
#  * no toolkit (a laptop, a CPU server, a fresh cloud VM): that config would stop in its CUDA
#    discovery, although building against LibTorch needs no toolkit. The wheel's exported targets
#    (Caffe2Targets.cmake) are imported directly instead, with the CUDA runtime and NCCL they
#    reference taken from the nvidia-* wheels torch installed beside it. Host code that uses the
#    CUDA runtime API or c10d's NCCL process group compiles and links the same; only nvcc-compiled
#    kernels (RETORT_CUDA) need the toolkit.
set(RETORT_PYTHON "${CMAKE_SOURCE_DIR}/.venv/bin/python" CACHE FILEPATH
    "Python whose torch wheel provides LibTorch")
if(NOT EXISTS "${RETORT_PYTHON}")
  message(FATAL_ERROR "No Python at ${RETORT_PYTHON}. Run `make setup` (creates .venv with torch==2.11.0) "
                      "or pass -DRETORT_PYTHON=/path/to/python.")
endif()
execute_process(
  COMMAND "${RETORT_PYTHON}" -c "import os, torch, torch.utils; print(os.path.dirname(torch.__file__)); print(torch.utils.cmake_prefix_path)"
  OUTPUT_VARIABLE _torch_paths OUTPUT_STRIP_TRAILING_WHITESPACE
  RESULT_VARIABLE _torch_rc)
if(NOT _torch_rc EQUAL 0)
  message(FATAL_ERROR "${RETORT_PYTHON} cannot import torch; run `make setup`.")
endif()
string(REPLACE "\n" ";" _torch_paths "${_torch_paths}")
list(GET _torch_paths 0 RETORT_TORCH_ROOT)
list(GET _torch_paths 1 _torch_prefix)
get_filename_component(_site_packages "${RETORT_TORCH_ROOT}" DIRECTORY)
set(RETORT_NVIDIA_WHEELS "${_site_packages}/nvidia")

# A toolkit is there when nvcc runs (a stale wrapper script left behind by an uninstalled toolkit
# does not count).
find_program(RETORT_NVCC nvcc HINTS /usr/local/cuda/bin ENV CUDA_HOME PATH_SUFFIXES bin)
set(_toolkit_default OFF)
if(RETORT_NVCC)
  execute_process(COMMAND "${RETORT_NVCC}" --version RESULT_VARIABLE _nvcc_rc OUTPUT_QUIET ERROR_QUIET)
  if(_nvcc_rc EQUAL 0)
    set(_toolkit_default ON)
  else()
    message(STATUS "${RETORT_NVCC} does not run: building as without a CUDA toolkit")
    unset(RETORT_NVCC CACHE)
    set(RETORT_NVCC "")
  endif()
endif()
option(RETORT_TORCH_CMAKE_CONFIG "Find LibTorch through its CMake config (needs a CUDA toolkit for the CUDA wheel)"
       ${_toolkit_default})

# Ampere, Hopper (H100/H200), Blackwell; PTX for newer parts. CUDA 13 dropped sm_50.
if(NOT DEFINED ENV{TORCH_CUDA_ARCH_LIST} AND NOT TORCH_CUDA_ARCH_LIST)
  set(TORCH_CUDA_ARCH_LIST "8.0;9.0;10.0;12.0+PTX")
endif()

if(RETORT_TORCH_CMAKE_CONFIG)
  list(PREPEND CMAKE_PREFIX_PATH "${_torch_prefix}")
  # The wheel is a CUDA build: its config runs CUDA discovery (needs the CUDA 13 toolkit).
  find_package(Torch 2.11 REQUIRED)
  set(RETORT_TORCH_FROM "CMake config, CUDA toolkit ${CUDAToolkit_VERSION}")
else()
  include(RetortTorchWithoutToolkit)
  set(RETORT_TORCH_FROM "exported targets; CUDA runtime and NCCL from the nvidia wheels, no CUDA toolkit")
endif()
message(STATUS "LibTorch ${Torch_VERSION} from ${RETORT_TORCH_ROOT} (${RETORT_TORCH_FROM})")

# CUDA host code (the runtime API, c10's CUDA streams and allocator, c10d NCCL) compiles where
# LibTorch is a CUDA build: its CUDA runtime target is there with the toolkit or without it.
if(TARGET torch::cudart)
  set(RETORT_CUDA_HOST ON)
else()
  set(RETORT_CUDA_HOST OFF)
endif()

# TORCH_CXX_FLAGS carries the ABI define; keep it on every target that sees torch headers.
add_library(retort_torch INTERFACE)
target_link_libraries(retort_torch INTERFACE ${TORCH_LIBRARIES})
target_include_directories(retort_torch SYSTEM INTERFACE ${TORCH_INCLUDE_DIRS})
separate_arguments(_torch_cxx_flags UNIX_COMMAND "${TORCH_CXX_FLAGS}")
target_compile_options(retort_torch INTERFACE $<$<COMPILE_LANGUAGE:CXX>:${_torch_cxx_flags}>)
# NCCL's header is not part of a CUDA toolkit: the nvidia-nccl wheel torch depends on has it. Only
# the targets with CUDA host code get it (retort_cuda_host_includes), so other files compile alike.
set(RETORT_NCCL_INCLUDE_DIR "")
if(EXISTS "${RETORT_NVIDIA_WHEELS}/nccl/include/nccl.h")
  set(RETORT_NCCL_INCLUDE_DIR "${RETORT_NVIDIA_WHEELS}/nccl/include")
endif()
function(retort_cuda_host_includes target)
  if(RETORT_CUDA_HOST)
    target_link_libraries(${target} PRIVATE torch::cudart)
    if(RETORT_NCCL_INCLUDE_DIR)
      target_include_directories(${target} SYSTEM PRIVATE "${RETORT_NCCL_INCLUDE_DIR}")
    endif()
  endif()
endfunction()

# The wheel's libtorch.so / libtorch_cpu.so carry (and export) their own copies of
# parts of libstdc++ (std::filesystem, std::chrono tzdb). If they come before
# libstdc++.so in an executable's NEEDED list, the dynamic linker binds our calls to
# those copies, and e.g. std::filesystem::remove_all jumps to address 0. Putting
# libstdc++ first on every link line keeps the system library in charge.
target_link_options(retort_torch INTERFACE
  "LINKER:--push-state,--no-as-needed,-lstdc++,--pop-state")
