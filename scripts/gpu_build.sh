#!/usr/bin/env bash
# On the GPU machine (no network; torch 2.11 in a Python venv, cmake, ninja, nvcc):
# build with RETORT_CUDA=ON against the unpacked .debs from scripts/gpu_deps.sh and run
# the test suite. Usage: scripts/gpu_build.sh [BUILD_DIR] [ctest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${1:-build-gpu}
shift || true
python=${RETORT_PYTHON:-/opt/torch/.venv/bin/python}
prefix=$PWD/third_party/prefix
if [ ! -d "$prefix/usr" ]; then
  echo "gpu_build: $prefix is missing; run scripts/gpu_deps.sh on a networked machine and carry it" >&2
  exit 2
fi
bin_dir=$(dirname "$python")
export PATH="$bin_dir:/usr/local/cuda/bin:$PATH"
export LD_LIBRARY_PATH="$prefix/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRETORT_CUDA=ON \
  -DRETORT_PYTHON="$python" \
  -DCMAKE_PREFIX_PATH="$prefix/usr;$prefix/usr/lib/x86_64-linux-gnu/cmake"
cmake --build "$build_dir" -j"$(nproc)"
"$build_dir/bin/retort" --version
ctest --test-dir "$build_dir" --output-on-failure -j4 --timeout 900 "$@"
