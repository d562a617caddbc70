#!/usr/bin/env bash
# `make quickstart`: the main job on an embedded default. Until training lands this is a
# smoke run of the CLI: what the build is, and the commands it knows.
set -euo pipefail
build_dir=${1:-build}
retort="$build_dir/bin/retort"
echo "== $retort --version"
"$retort" --version
echo
echo "== $retort --help"
"$retort" --help
echo
echo "Quickstart done. The binary is $retort; run 'make check' for the test suite."
