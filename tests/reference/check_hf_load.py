"""Checks a model directory written by Retort with the references: transformers loads it
and its logits equal the expected ones, and safetensors reads every file it holds.
Usage: check_hf_load.py MODEL_DIR EXPECTED.safetensors  (exit 0 when everything matches)."""
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM


def main():
    model_dir, expected_path = Path(sys.argv[1]), sys.argv[2]
    for shard in sorted(model_dir.glob("*.safetensors")):
        load_file(str(shard))  # the reference reader's own validation
    expected = load_file(expected_path)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    with torch.no_grad():
        logits = model(expected["input_ids"]).logits
    error = (logits - expected["logits"]).abs().max().item()
    print(f"max abs logits difference: {error:.3g}")
    return 0 if error <= 1e-5 else 1


if __name__ == "__main__":
    sys.exit(main())
