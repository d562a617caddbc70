"""Runs a GGUF that Retort exported in llama.cpp (llama-cpp-python) and compares with what Retort
computed: tokenization of a probe text, a greedy continuation, and perplexity on held-out text.
Usage: check_export_llama_cpp.py CASE.json; CASE holds "gguf", optional "lora", and any of
"probe"+"probe_ids", "prompt_ids"+"greedy" (optionally "tie_logit_margin": the continuations may
part at a position where llama.cpp scores Retort's token within that many logits of its own, i.e.
a near-tie that quantized arithmetic can break either way; before it they must agree token for
token), "ppl_ids"+"ppl"+"ppl_rel_tol". Prints llama.cpp's results as JSON; exit 1 on a mismatch.
gguf-py must also read each file."""
import json
import math
import sys

import numpy as np
from gguf import GGUFReader
from llama_cpp import Llama


def main() -> int:
    case = json.load(open(sys.argv[1]))
    for path in (case["gguf"], case.get("lora")):
        if path:
            GGUFReader(path)  # gguf-py's own checks on every file we write
    kwargs = {"lora_path": case["lora"]} if case.get("lora") else {}
    llm = Llama(case["gguf"], n_ctx=512, n_batch=512, logits_all=True, verbose=False, seed=0, n_threads=2, **kwargs)
    report, failures = {}, []
    if "probe" in case:
        ids = llm.tokenize(case["probe"].encode(), add_bos=True, special=True)
        report["probe_ids"] = ids
        if ids != case["probe_ids"]:
            failures.append(f"tokenization differs:\n  llama.cpp {ids}\n  retort    {case['probe_ids']}")
    if "prompt_ids" in case:
        llm.reset()
        llm.eval(case["prompt_ids"])
        out, rows = [], []
        for _ in range(len(case["greedy"])):
            rows.append(np.array(llm.scores[llm.n_tokens - 1], dtype=np.float64))
            token = int(np.argmax(rows[-1]))
            out.append(token)
            llm.eval([token])
        report["greedy"] = out
        parted = next((i for i, (a, b) in enumerate(zip(out, case["greedy"])) if a != b), None)
        margin = case.get("tie_logit_margin")
        if parted is not None and margin is not None:
            gap = float(rows[parted][out[parted]] - rows[parted][case["greedy"][parted]])
            report["parted_at"], report["logit_gap"] = parted, gap
            if gap <= margin:
                parted = None  # a near-tie: llama.cpp nearly chose Retort's token too
        if parted is not None:
            failures.append(f"greedy continuation differs:\n  llama.cpp {out}\n  retort    {case['greedy']}")
    if "ppl_ids" in case:
        ids = case["ppl_ids"]
        llm.reset()
        llm.eval(ids)
        logits = np.asarray(llm.scores[: len(ids) - 1], dtype=np.float64)
        logits -= logits.max(axis=1, keepdims=True)
        log_probs = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        nll = -log_probs[np.arange(len(ids) - 1), ids[1:]].mean()
        ppl = math.exp(nll)
        report["ppl"] = ppl
        relative = abs(ppl - case["ppl"]) / case["ppl"]
        report["ppl_rel_diff"] = relative
        tolerance = case.get("ppl_rel_tol")
        if tolerance is not None and relative > tolerance:
            failures.append(f"perplexity {ppl:.4f} vs retort {case['ppl']:.4f}: {relative:.4%} > {tolerance:.2%}")
    print(json.dumps(report))
    for failure in failures:
        print(failure, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
