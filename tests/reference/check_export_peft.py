"""Loads a PEFT adapter Retort exported onto its base with peft and compares logits with
Retort's adapter model. Usage: check_export_peft.py BASE_DIR ADAPTER_DIR CASE.safetensors
(tensors "input_ids" [1, T] and "logits" [1, T, V]). Exit 1 when they differ by more than 1e-4."""
import sys

import torch
from peft import PeftModel
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM


def main() -> int:
    base, adapter, case = sys.argv[1], sys.argv[2], load_file(sys.argv[3])
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32), adapter).eval()
    with torch.no_grad():
        logits = model(case["input_ids"]).logits
    error = (logits - case["logits"]).abs().max().item()
    print(f"max abs logits difference: {error:.3g}")
    return 0 if error <= 1e-4 else 1


if __name__ == "__main__":
    sys.exit(main())
