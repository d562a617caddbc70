# ccache when present. PCH needs ccache's pch sloppiness to hit the cache.
find_program(RETORT_CCACHE ccache)
if(RETORT_CCACHE)
  set(_launcher ${CMAKE_COMMAND} -E env
      "CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime"
      ${RETORT_CCACHE})
  set(CMAKE_C_COMPILER_LAUNCHER ${_launcher})
  set(CMAKE_CXX_COMPILER_LAUNCHER ${_launcher})
  set(CMAKE_CUDA_COMPILER_LAUNCHER ${RETORT_CCACHE})
  message(STATUS "ccache: ${RETORT_CCACHE}")
endif()
