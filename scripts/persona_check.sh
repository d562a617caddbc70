#!/usr/bin/env bash
# Behaviour check for refactors: the shipped persona LoRA recipe shortened to 12 steps, then a
# digest of its losses (metrics.jsonl) and adapter bytes. Two builds that behave the same print
# the same two lines. Usage: scripts/persona_check.sh [build_dir] [out_dir]
set -euo pipefail
build_dir=${1:-build}
out=${2:-$(mktemp -d)/persona}
mkdir -p "$(dirname "$out")"
model=$(.venv/bin/python scripts/fetch_smollm2.py)
"$build_dir/bin/retort" run recipes/creator_persona_lora.yaml "model.path=$model" \
  "checkpoint.output_dir=$out" training.max_steps=12 export.formats=[peft] >"$out.log" 2>&1 ||
  { tail -20 "$out.log"; exit 1; }
.venv/bin/python - "$out" <<'PY'
import hashlib, json, pathlib, sys
out = pathlib.Path(sys.argv[1])
losses = [json.loads(l)["loss"] for l in open(out / "metrics.jsonl") if '"loss"' in l]
print("losses", len(losses), hashlib.sha256(repr(losses).encode()).hexdigest()[:16], losses[:3], losses[-1])
adapter = out / "adapter" / "adapter_model.safetensors"
print("adapter", hashlib.sha256(adapter.read_bytes()).hexdigest())
PY
