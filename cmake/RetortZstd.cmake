# libzstd (the teacher-logit cache's compression) from Debian's libzstd-dev, found by header and
# library so an unpacked .deb on CMAKE_PREFIX_PATH works as well as the installed package.
find_path(ZSTD_INCLUDE_DIR zstd.h)
find_library(ZSTD_LIBRARY zstd)
if(NOT ZSTD_INCLUDE_DIR OR NOT ZSTD_LIBRARY)
  message(FATAL_ERROR "libzstd not found: run `make setup` (installs libzstd-dev)")
endif()
add_library(retort_zstd INTERFACE)
target_include_directories(retort_zstd SYSTEM INTERFACE "${ZSTD_INCLUDE_DIR}")
target_link_libraries(retort_zstd INTERFACE "${ZSTD_LIBRARY}")
message(STATUS "zstd: ${ZSTD_LIBRARY}")
