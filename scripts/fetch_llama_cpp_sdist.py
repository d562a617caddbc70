"""Prints the path of the llama-cpp-python 0.3.36 sdist (llama.cpp's sources: vocab test files,
chat templates), fetching it once into ~/.cache/retort (or $RETORT_CACHE_DIR); safe when many
processes run it at once (scripts/retort_cache.py)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from retort_cache import llama_cpp_sdist as cached_sdist  # noqa: E402

__all__ = ["cached_sdist"]

if __name__ == "__main__":
    print(cached_sdist())
