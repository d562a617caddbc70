# retort_library(NAME SOURCES ... [CUDA_SOURCES ...] [CUDA_HOST_SOURCES ...] [CPU_FALLBACK_SOURCES ...] DEPS ...)
#   CUDA_SOURCES          .cu files, compiled by nvcc when RETORT_CUDA (a CUDA toolkit is there);
#   CUDA_HOST_SOURCES     C++ that calls the CUDA runtime, compiled wherever LibTorch is a CUDA build
#                         (RETORT_CUDA_HOST, toolkit or not);
#   CPU_FALLBACK_SOURCES  their stand-ins where it is not.
# One static library per top-level folder. All share one precompiled header of the
# LibTorch headers, built once (a clean build on 2 cores spends most time there).
set(RETORT_PCH_HEADERS <ATen/ATen.h> <torch/types.h> <torch/nn/module.h> <string> <vector> <memory>
    <unordered_map> <optional> <filesystem>)

add_library(retort_pch STATIC "${CMAKE_SOURCE_DIR}/cmake/pch.cpp")
target_link_libraries(retort_pch PUBLIC retort_torch)
target_precompile_headers(retort_pch PRIVATE ${RETORT_PCH_HEADERS})

function(retort_apply_warnings target)
  target_compile_options(${target} PRIVATE
    $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wno-unused-parameter>)
  if(RETORT_SANITIZE)
    target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:-fsanitize=address,undefined -fno-omit-frame-pointer>)
    target_link_options(${target} PUBLIC -fsanitize=address,undefined)
  endif()
endfunction()

function(retort_use_pch target)
  target_precompile_headers(${target} REUSE_FROM retort_pch)
endfunction()

function(retort_library name)
  cmake_parse_arguments(ARG "" "" "SOURCES;CUDA_SOURCES;CUDA_HOST_SOURCES;CPU_FALLBACK_SOURCES;DEPS" ${ARGN})
  set(_sources ${ARG_SOURCES})
  if(RETORT_CUDA)
    list(APPEND _sources ${ARG_CUDA_SOURCES})
  endif()
  if(RETORT_CUDA_HOST)
    list(APPEND _sources ${ARG_CUDA_HOST_SOURCES})
  else()
    list(APPEND _sources ${ARG_CPU_FALLBACK_SOURCES})
  endif()
  add_library(retort_${name} STATIC ${_sources})
  target_include_directories(retort_${name} PUBLIC "${CMAKE_SOURCE_DIR}")
  target_link_libraries(retort_${name} PUBLIC retort_torch ${ARG_DEPS})
  if((RETORT_CUDA AND ARG_CUDA_SOURCES) OR (RETORT_CUDA_HOST AND ARG_CUDA_HOST_SOURCES))
    retort_cuda_host_includes(retort_${name})
  endif()
  if(RETORT_CUDA AND ARG_CUDA_SOURCES)
    set_target_properties(retort_${name} PROPERTIES CUDA_SEPARABLE_COMPILATION OFF)
  endif()
  retort_apply_warnings(retort_${name})
  retort_use_pch(retort_${name})
endfunction()

# LibTorch's at::parallel_for is inline code around `#pragma omp parallel` (the wheel's ATen is
# built for OpenMP): a file that calls it must be compiled with -fopenmp or its loop runs on one
# thread. Only those files get the flag (the shared precompiled header is built without it), and
# the link uses libgomp.so.1 -- the same soname as the wheel's bundled copy, so one runtime loads.
function(retort_openmp_sources target)
  set_source_files_properties(${ARGN} TARGET_DIRECTORY ${target} PROPERTIES
    COMPILE_OPTIONS "-fopenmp" SKIP_PRECOMPILE_HEADERS ON)
  target_link_options(${target} PUBLIC -fopenmp)
endfunction()
