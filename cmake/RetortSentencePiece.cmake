# libsentencepiece has no CMake package in Debian; find it by header and library so
# an unpacked .deb on CMAKE_PREFIX_PATH works as well as the installed package.
find_path(SENTENCEPIECE_INCLUDE_DIR sentencepiece_processor.h)
find_library(SENTENCEPIECE_LIBRARY sentencepiece)
if(NOT SENTENCEPIECE_INCLUDE_DIR OR NOT SENTENCEPIECE_LIBRARY)
  message(FATAL_ERROR "libsentencepiece not found: run `make setup` (installs libsentencepiece-dev)")
endif()
add_library(retort_sentencepiece INTERFACE)
target_include_directories(retort_sentencepiece SYSTEM INTERFACE "${SENTENCEPIECE_INCLUDE_DIR}")
target_link_libraries(retort_sentencepiece INTERFACE "${SENTENCEPIECE_LIBRARY}")
message(STATUS "sentencepiece: ${SENTENCEPIECE_LIBRARY}")
