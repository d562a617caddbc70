"""Runs one fixture_*.py oracle script into its output folder, unless that folder already
holds the output of the same script text and the same requirements.txt (a stamp file).
The script is called as `python SCRIPT OUT_DIR`; it writes into a temporary folder of this
process's own that is renamed into place only when it succeeds, so a failed run never leaves half
a fixture, and two runs of the same fixture at once (two ctest runs on one build folder) never
write into each other's folder: the later one to finish keeps the earlier one's result."""
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def main() -> int:
    script, out_dir = Path(sys.argv[1]), Path(sys.argv[2])
    root = Path(__file__).resolve().parents[2]
    digest = hashlib.sha256()
    # Sibling oracle modules the script imports (`import fixture_x` / `from fixture_x import`).
    imported = sorted(set(re.findall(r"^(?:from|import) (fixture_\w+)", script.read_text(), re.MULTILINE)))
    for path in (script, Path(__file__), root / "requirements.txt", root / "scripts" / "retort_cache.py",
                 script.parent / "oracle_util.py", *(script.parent / f"{name}.py" for name in imported)):
        if path.exists():
            digest.update(path.read_bytes())
    # Fixtures record paths into the download cache: another cache folder means other fixtures.
    digest.update(os.environ.get("RETORT_CACHE_DIR", "~/.cache/retort").encode())
    stamp = digest.hexdigest()
    stamp_file = out_dir / ".stamp"
    if stamp_file.exists() and stamp_file.read_text() == stamp:
        print(f"{script.name}: up to date in {out_dir}")
        return 0
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    temp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".partial", dir=out_dir.parent))
    try:
        return run_into(script, out_dir, temp, stamp)
    finally:
        shutil.rmtree(temp, ignore_errors=True)


def run_into(script: Path, out_dir: Path, temp: Path, stamp: str) -> int:
    env = dict(os.environ, PYTHONHASHSEED="0", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               TOKENIZERS_PARALLELISM="false", PYTHONPATH=str(script.parent))
    result = subprocess.run([sys.executable, str(script), str(temp)], env=env)
    if result.returncode != 0:
        print(f"{script.name}: failed with exit code {result.returncode}", file=sys.stderr)
        return result.returncode
    (temp / ".stamp").write_text(stamp)
    stamp_file = out_dir / ".stamp"
    if stamp_file.exists() and stamp_file.read_text() == stamp:
        print(f"{script.name}: another run wrote {out_dir} meanwhile; keeping it")
        return 0
    if out_dir.exists():  # an outdated fixture: move it aside in one step, then delete it
        stale = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".stale", dir=out_dir.parent))
        os.rename(out_dir, stale / "old")
        shutil.rmtree(stale, ignore_errors=True)
    try:
        os.rename(temp, out_dir)
    except OSError:  # another run of the same fixture renamed its folder into place first
        if not (stamp_file.exists() and stamp_file.read_text() == stamp):
            raise
    print(f"{script.name}: wrote {out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
