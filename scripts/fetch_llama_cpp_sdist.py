"""Prints the path of the llama-cpp-python 0.3.36 sdist (llama.cpp's sources: vocab test files,
chat templates), fetching it once with `pip download` into ~/.cache/retort/sdists (or
$RETORT_CACHE_DIR). --no-build-isolation with scikit-build-core from requirements.txt makes
pip read its metadata without building cmake from source (seconds instead of minutes). A file
lock makes concurrent fixtures wait for one download."""
import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

SDIST = "llama_cpp_python-0.3.36.tar.gz"


def cached_sdist() -> Path:
    folder = Path(os.environ.get("RETORT_CACHE_DIR", Path.home() / ".cache" / "retort")) / "sdists"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / SDIST
    with open(folder / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not target.exists():
            with tempfile.TemporaryDirectory(dir=folder) as temp:
                subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                                "--no-build-isolation", "--quiet", "-d", temp, "llama-cpp-python==0.3.36"], check=True)
                shutil.move(str(Path(temp) / SDIST), target)
    return target


if __name__ == "__main__":
    print(cached_sdist())
