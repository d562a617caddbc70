# The two commands of the README, plus the pieces they are made of.
#   make quickstart   set up, build, run the main job on an embedded default
#   make check        set up, build, run the whole test suite
# Incremental work after the first build: `cmake --build build` then `ctest --test-dir build`.
BUILD_DIR ?= build
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE := .venv/bin/cmake
CTEST := .venv/bin/ctest

.PHONY: setup configure build check quickstart clean

setup:
	@bash scripts/setup.sh

configure: setup
	@if [ ! -f $(BUILD_DIR)/build.ninja ]; then \
	  $(CMAKE) -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo; \
	fi

build: configure
	@$(CMAKE) --build $(BUILD_DIR) -j$(JOBS)

check: build
	@$(CTEST) --test-dir $(BUILD_DIR) --output-on-failure -j$(JOBS) --timeout 900

quickstart: build
	@bash scripts/quickstart.sh $(BUILD_DIR)

clean:
	rm -rf $(BUILD_DIR)
