"""Loads an HF model directory Retort exported with transformers and compares with Retort:
logits (float32), a greedy continuation, tokenizer ids of a probe text, and the chat template
rendering. Usage: check_export_hf.py CASE.json... (one process for all: transformers loads once), each with "dir", "input_ids", "logits" (a safetensors
file holding Retort's logits [1, T, V]), "tol", and optionally "prompt_ids"+"greedy",
"probe"+"probe_ids", "messages"+"rendered". Exit 1 on a mismatch."""
import json
import sys

import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer


def check(case) -> list:
    failures = []
    for shard in sorted(__import__("pathlib").Path(case["dir"]).glob("*.safetensors")):
        load_file(str(shard))  # the reference reader's own checks
    model = AutoModelForCausalLM.from_pretrained(case["dir"], dtype=torch.float32).eval()
    ours = load_file(case["logits"])["logits"]
    with torch.no_grad():
        logits = model(torch.tensor([case["input_ids"]])).logits
    error = (logits - ours).abs().max().item()
    print(f"max abs logits difference: {error:.3g}")
    if error > case["tol"]:
        failures.append(f"logits differ by {error} > {case['tol']}")
    if "prompt_ids" in case:
        model.generation_config.eos_token_id = None
        with torch.no_grad():
            out = model.generate(torch.tensor([case["prompt_ids"]]), do_sample=False,
                                 max_new_tokens=len(case["greedy"]), pad_token_id=0)
        greedy = out[0, len(case["prompt_ids"]):].tolist()
        if greedy != case["greedy"]:
            failures.append(f"greedy differs:\n  transformers {greedy}\n  retort       {case['greedy']}")
    tokenizer = AutoTokenizer.from_pretrained(case["dir"])
    if "probe" in case:
        ids = tokenizer(case["probe"])["input_ids"]
        spm_file = __import__("pathlib").Path(case["dir"]) / "tokenizer.model"
        if spm_file.exists() and not (spm_file.parent / "tokenizer.json").exists():
            # transformers' fast conversion of SentencePiece models merges runs of spaces differently
            # from sentencepiece itself (on the original file too); sentencepiece is the reference.
            import sentencepiece
            ids = [tokenizer.bos_token_id] + sentencepiece.SentencePieceProcessor(model_file=str(spm_file)).encode(case["probe"])
        if ids != case["probe_ids"]:
            failures.append(f"tokenizer ids differ:\n  transformers {ids}\n  retort       {case['probe_ids']}")
    if "messages" in case:
        text = tokenizer.apply_chat_template(case["messages"], tokenize=False, add_generation_prompt=True)
        if text != case["rendered"]:
            failures.append(f"chat template rendering differs:\n  transformers {text!r}\n  retort       {case['rendered']!r}")
    return [f"{case['dir']}: {failure}" for failure in failures]


def main() -> int:
    failures = [failure for path in sys.argv[1:] for failure in check(json.load(open(path)))]
    for failure in failures:
        print(failure, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
