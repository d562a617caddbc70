"""Runs one fixture_*.py oracle script into its output folder, unless that folder already
holds the output of the same script text and the same requirements.txt (a stamp file).
The script is called as `python SCRIPT OUT_DIR`; it writes into a temp folder that is
renamed into place only when it succeeds, so a failed run never leaves half a fixture."""
import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path


def main() -> int:
    script, out_dir = Path(sys.argv[1]), Path(sys.argv[2])
    root = Path(__file__).resolve().parents[2]
    digest = hashlib.sha256()
    # Sibling oracle modules the script imports (`import fixture_x` / `from fixture_x import`).
    imported = sorted(set(re.findall(r"^(?:from|import) (fixture_\w+)", script.read_text(), re.MULTILINE)))
    for path in (script, Path(__file__), root / "requirements.txt",
                 script.parent / "oracle_util.py", *(script.parent / f"{name}.py" for name in imported)):
        if path.exists():
            digest.update(path.read_bytes())
    stamp = digest.hexdigest()
    stamp_file = out_dir / ".stamp"
    if stamp_file.exists() and stamp_file.read_text() == stamp:
        print(f"{script.name}: up to date in {out_dir}")
        return 0
    temp = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(temp, ignore_errors=True)
    temp.mkdir(parents=True)
    env = dict(os.environ, PYTHONHASHSEED="0", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               TOKENIZERS_PARALLELISM="false", PYTHONPATH=str(script.parent))
    result = subprocess.run([sys.executable, str(script), str(temp)], env=env)
    if result.returncode != 0:
        print(f"{script.name}: failed with exit code {result.returncode}", file=sys.stderr)
        return result.returncode
    (temp / ".stamp").write_text(stamp)
    shutil.rmtree(out_dir, ignore_errors=True)
    temp.rename(out_dir)
    print(f"{script.name}: wrote {out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
