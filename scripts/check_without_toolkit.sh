#!/usr/bin/env bash
# Builds Retort as a machine without a CUDA toolkit would, and checks what that build can do.
# The toolkit is hidden in a private mount namespace (an empty tmpfs over its folder; needs root,
# as CI runs), so nothing outside this process tree notices. Then: configure, build `retort` and
# the test executable, `retort --version` (no own kernels, NCCL compiled in), and the tests that
# touch CUDA host code and the CLI.
# Usage: scripts/check_without_toolkit.sh [BUILD_DIR]   (default build-no-toolkit)
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${1:-build-no-toolkit}

if [ "${RETORT_TOOLKIT_HIDDEN:-}" != 1 ]; then
  toolkit=$(readlink -f "$(dirname "$(command -v nvcc 2>/dev/null || echo /usr/local/cuda/bin/nvcc)")/.." || true)
  if [ -z "$toolkit" ] || [ ! -d "$toolkit" ]; then
    echo "check_without_toolkit: no CUDA toolkit on this machine; building as is"
    exec env RETORT_TOOLKIT_HIDDEN=1 bash "$0" "$build_dir"
  fi
  if [ "$(id -u)" -ne 0 ]; then
    echo "check_without_toolkit: hiding $toolkit needs root (a private mount namespace)" >&2
    exit 2
  fi
  echo "check_without_toolkit: hiding $toolkit"
  exec unshare --mount --propagation private \
    bash -c 'mount -t tmpfs -o size=1M retort-no-toolkit "$1" && RETORT_TOOLKIT_HIDDEN=1 exec bash "$2" "$3"' \
    _ "$toolkit" "$0" "$build_dir"
fi

if command -v nvcc >/dev/null 2>&1 && nvcc --version >/dev/null 2>&1; then
  echo "check_without_toolkit: nvcc still runs ($(command -v nvcc)); the toolkit is not hidden" >&2
  exit 1
fi
# The Python fixtures do not depend on the build kind: share the normal build's (made if missing).
.venv/bin/cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DRETORT_FIXTURES_DIR="$PWD/build/fixtures"
grep -q "RETORT_TORCH_CMAKE_CONFIG:BOOL=OFF" "$build_dir/CMakeCache.txt"
.venv/bin/cmake --build "$build_dir" -j"$(nproc)" --target retort retort_tests
version=$("$build_dir/bin/retort" --version)
echo "$version"
grep -q "own CUDA kernels: no" <<<"$version"
grep -q "NCCL: yes" <<<"$version"
.venv/bin/ctest --test-dir "$build_dir" --output-on-failure -j"$(nproc)" -R '^(CudaHost|CliExitCodes|CliArgs)\.'
