# PCRE2 (8-bit, UTF + UCP) runs the tokenizers' pre-tokenization regexes. Found by header and
# library (no pkg-config needed), so an unpacked .deb on CMAKE_PREFIX_PATH works as well.
find_path(PCRE2_INCLUDE_DIR pcre2.h)
find_library(PCRE2_LIBRARY pcre2-8)
if(NOT PCRE2_INCLUDE_DIR OR NOT PCRE2_LIBRARY)
  message(FATAL_ERROR "libpcre2-8 not found: run `make setup` (installs libpcre2-dev)")
endif()
add_library(retort_pcre2 INTERFACE)
target_include_directories(retort_pcre2 SYSTEM INTERFACE "${PCRE2_INCLUDE_DIR}")
target_link_libraries(retort_pcre2 INTERFACE "${PCRE2_LIBRARY}")
message(STATUS "pcre2: ${PCRE2_LIBRARY}")
