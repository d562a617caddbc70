# ccache when present. PCH needs ccache's pch sloppiness to hit the cache; BASEDIR and
# NOHASHDIR make a fresh clone in another folder (as CI's) hit what an earlier build cached.
find_program(RETORT_CCACHE ccache)
if(RETORT_CCACHE)
  set(_launcher ${CMAKE_COMMAND} -E env
      "CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime"
      "CCACHE_BASEDIR=${CMAKE_SOURCE_DIR}" "CCACHE_NOHASHDIR=true"
      ${RETORT_CCACHE})
  set(CMAKE_C_COMPILER_LAUNCHER ${_launcher})
  set(CMAKE_CXX_COMPILER_LAUNCHER ${_launcher})
  set(CMAKE_CUDA_COMPILER_LAUNCHER ${CMAKE_COMMAND} -E env "CCACHE_BASEDIR=${CMAKE_SOURCE_DIR}"
      "CCACHE_NOHASHDIR=true" ${RETORT_CCACHE})
  message(STATUS "ccache: ${RETORT_CCACHE}")
endif()
