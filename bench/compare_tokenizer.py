"""Tokenizer benchmark: Retort's encode throughput vs HF tokenizers (Rust), single-threaded,
on the same ~1 MB of varied documents and the same vocabularies (the tokenizer test fixture's
corpus and tokenizer.json files; the test suite checks the ids are equal).
Usage: .venv/bin/python bench/compare_tokenizer.py [--build build]"""
import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ["RAYON_NUM_THREADS"] = "1"
from tokenizers import Tokenizer  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--build", default=str(ROOT / "build"))
    args = parser.parse_args()
    fixtures = Path(args.build) / "fixtures" / "tokenizer"
    docs_path = fixtures / "corpus.json"
    docs = json.loads(docs_path.read_text())
    megabytes = sum(len(d.encode()) for d in docs) / 1e6
    results = {}
    for name in ("llama-bpe", "qwen2", "smollm2"):
        path = fixtures / f"hf-{name}" / "tokenizer.json"
        hf = Tokenizer.from_file(str(path))
        best = 1e9
        for _ in range(3):
            start = time.perf_counter()
            for doc in docs:
                hf.encode(doc, add_special_tokens=False)
            best = min(best, time.perf_counter() - start)
        ours = json.loads(subprocess.run([str(Path(args.build) / "bin" / "retort_bench_tokenizer"), str(path),
                                          str(docs_path)], check=True, capture_output=True, text=True).stdout)
        results[name] = {"retort_mb_s": ours["mb_per_s"], "hf_tokenizers_mb_s": megabytes / best}
        print(f"{name:10s} retort {ours['mb_per_s']:6.2f} MB/s  HF tokenizers {megabytes / best:6.2f} MB/s  "
              f"ratio {ours['mb_per_s'] / (megabytes / best):.2f}x  ({megabytes:.2f} MB, 1 thread)")
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "tokenizer.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
