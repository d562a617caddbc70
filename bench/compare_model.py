"""Model-core benchmark: Retort vs transformers on the same CPU, threads and weights.

Builds a ~125M-parameter Llama config with random weights (saved as an HF checkpoint), then
measures prefill (forward) tokens/s and batch-1 greedy decode tokens/s (KV cache) for both,
and the load time of SmolLM2-135M from its Q4_1 GGUF. Prints a table and writes JSON.
Usage: .venv/bin/python bench/compare_model.py [--build build] [--threads 2] [--out bench/results]
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM

ROOT = Path(__file__).resolve().parents[1]


def transformers_numbers(model_dir, prefill, decode, threads):
    torch.set_num_threads(threads)
    start = time.perf_counter()
    model = LlamaForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    load_s = time.perf_counter() - start
    torch.manual_seed(0)
    ids = torch.randint(3, model.config.vocab_size, (1, prefill))
    with torch.inference_mode():
        model(ids)
        forward_s = min(_timed(lambda: model(ids)) for _ in range(3))
        prompt = ids[:, :16]
        kwargs = dict(do_sample=False, max_new_tokens=decode, min_new_tokens=decode, pad_token_id=0)
        model.generate(prompt, **kwargs)
        decode_s = min(_timed(lambda: model.generate(prompt, **kwargs)) for _ in range(3))
    return {"load_s": load_s, "forward_tokens_per_s": prefill / forward_s, "decode_tokens_per_s": decode / decode_s}


def _timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def retort_numbers(binary, model, prefill, decode, threads):
    out = subprocess.run([str(binary), str(model), str(prefill), str(decode), str(threads)],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--build", default=str(ROOT / "build"))
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--prefill", type=int, default=256)
    parser.add_argument("--decode", type=int, default=64)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"))
    args = parser.parse_args()
    binary = Path(args.build) / "bin" / "retort_bench_model"
    config = LlamaConfig(vocab_size=32000, hidden_size=768, intermediate_size=2048, num_hidden_layers=12,
                         num_attention_heads=12, num_key_value_heads=4, max_position_embeddings=2048,
                         rms_norm_eps=1e-5, eos_token_id=None)
    results = {"machine": platform.processor() or platform.machine(), "threads": args.threads,
               "torch": torch.__version__}
    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        LlamaForCausalLM(config).save_pretrained(tmp)
        results["llama_125m"] = {
            "retort": retort_numbers(binary, tmp, args.prefill, args.decode, args.threads),
            "transformers": transformers_numbers(tmp, args.prefill, args.decode, args.threads),
        }
    smollm2 = Path.home() / ".cache" / "retort" / "smollm2" / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if smollm2.exists():
        results["smollm2_gguf"] = {"retort": retort_numbers(binary, smollm2, 64, 32, args.threads)}
    r, t = results["llama_125m"]["retort"], results["llama_125m"]["transformers"]
    print(f"llama ~125M fp32 CPU, {args.threads} threads (torch {torch.__version__})")
    print(f"  prefill {args.prefill} tok: retort {r['forward_tokens_per_s']:.0f} tok/s, transformers "
          f"{t['forward_tokens_per_s']:.0f} tok/s, ratio {r['forward_tokens_per_s'] / t['forward_tokens_per_s']:.2f}x")
    print(f"  decode  {args.decode} tok: retort {r['decode_tokens_per_s']:.1f} tok/s, transformers "
          f"{t['decode_tokens_per_s']:.1f} tok/s, ratio {r['decode_tokens_per_s'] / t['decode_tokens_per_s']:.2f}x")
    print(f"  load (safetensors): retort {r['load_s']:.2f} s, transformers {t['load_s']:.2f} s")
    if "smollm2_gguf" in results:
        s = results["smollm2_gguf"]["retort"]
        print(f"SmolLM2-135M Q4_1 GGUF: load {s['load_s']:.2f} s, decode {s['decode_tokens_per_s']:.1f} tok/s")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "model_core.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
