# LibTorch comes from the torch wheel in the project venv (or any Python given by
# RETORT_PYTHON, e.g. /opt/torch/.venv/bin/python on the GPU machine).
set(RETORT_PYTHON "${CMAKE_SOURCE_DIR}/.venv/bin/python" CACHE FILEPATH
    "Python whose torch wheel provides LibTorch")
if(NOT Torch_DIR)
  if(NOT EXISTS "${RETORT_PYTHON}")
    message(FATAL_ERROR "No Python at ${RETORT_PYTHON}. Run `make setup` (creates .venv with torch==2.11.0) "
                        "or pass -DRETORT_PYTHON=/path/to/python.")
  endif()
  execute_process(
    COMMAND "${RETORT_PYTHON}" -c "import torch.utils; print(torch.utils.cmake_prefix_path)"
    OUTPUT_VARIABLE _torch_prefix OUTPUT_STRIP_TRAILING_WHITESPACE
    RESULT_VARIABLE _torch_rc)
  if(NOT _torch_rc EQUAL 0)
    message(FATAL_ERROR "${RETORT_PYTHON} cannot import torch; run `make setup`.")
  endif()
  list(PREPEND CMAKE_PREFIX_PATH "${_torch_prefix}")
endif()

# Ampere, Hopper (H100/H200), Blackwell; PTX for newer parts. CUDA 13 dropped sm_50.
if(NOT DEFINED ENV{TORCH_CUDA_ARCH_LIST} AND NOT TORCH_CUDA_ARCH_LIST)
  set(TORCH_CUDA_ARCH_LIST "8.0;9.0;10.0;12.0+PTX")
endif()

# The wheel is a CUDA build: its config runs CUDA discovery (needs the CUDA 13 toolkit).
find_package(Torch 2.11 REQUIRED)
message(STATUS "LibTorch ${Torch_VERSION} from ${Torch_DIR}")

# TORCH_CXX_FLAGS carries the ABI define; keep it on every target that sees torch headers.
add_library(retort_torch INTERFACE)
target_link_libraries(retort_torch INTERFACE ${TORCH_LIBRARIES})
target_include_directories(retort_torch SYSTEM INTERFACE ${TORCH_INCLUDE_DIRS})
separate_arguments(_torch_cxx_flags UNIX_COMMAND "${TORCH_CXX_FLAGS}")
target_compile_options(retort_torch INTERFACE $<$<COMPILE_LANGUAGE:CXX>:${_torch_cxx_flags}>)

# The wheel's libtorch.so / libtorch_cpu.so carry (and export) their own copies of
# parts of libstdc++ (std::filesystem, std::chrono tzdb). If they come before
# libstdc++.so in an executable's NEEDED list, the dynamic linker binds our calls to
# those copies, and e.g. std::filesystem::remove_all jumps to address 0. Putting
# libstdc++ first on every link line keeps the system library in charge.
target_link_options(retort_torch INTERFACE
  "LINKER:--push-state,--no-as-needed,-lstdc++,--pop-state")
