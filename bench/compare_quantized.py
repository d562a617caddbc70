"""Quantized frozen bases (`model.quantize: none | int8 | nf4 | keep`, docs/quantized-bases.md):
training tokens/s, peak RSS and the bytes the decoder projections keep resident, in one run.

Cases (each side in its own process; peak RSS is the process's maximum resident memory, taken
from the kernel with wait4(), for Retort and the Python baselines alike):

  retort-<q>[-ckpt]   SmolLM2-135M-Instruct (the PyPI Q4_1 GGUF) LoRA r16 on all seven projections,
                      text rows of --batch x --seq tokens (the creator-persona texts, as
                      compare_training.py builds them), model.quantize = q in none, int8, nf4, keep,
                      without and with activation checkpointing (-ckpt). Projection bytes: Retort's
                      "base: decoder projections quantized in memory (...), N MiB" line; for `none`,
                      float32 bytes of the projections from the model's shapes (that line is absent).
                      Target (the issue): against `none` with the same checkpointing, peak RSS lower
                      by at least 80% of the projection bytes saved, at >= 0.8x its tokens/s.
  hf-nf4[-ckpt]       transformers + peft + bitsandbytes 4-bit (nf4, double quant, float32 compute)
                      on the same rows (Retort's tokenization), same AdamW, threads and clipping; the
                      GGUF dequantized to a float32 HF folder first (transformers' GGUF loader).
  hf-dense[-ckpt]     transformers + peft on that float32 folder.
                      Retort nf4 is reported as ratios against both (tokens/s and peak RSS).
  llama3b             a random model shaped like Llama-3.2-3B (3072 wide, 8192 MLP, 28 layers,
                      24/8 heads, tied 128256 vocabulary with Llama 3's tokenizer from the test
                      fixtures; SmolLM2's 49152 if those are missing), bfloat16 safetensors written
                      by this script; LoRA r16, seq --big-seq, micro batch 1, nf4, checkpointing,
                      --big-warmup + --big-steps steps. Target: peak RSS <= 5 GB.
  llama8b             the same for Llama-3.1-8B's shape (4096 wide, 14336 MLP, 32 layers, 32/8 heads,
                      untied head): load + one step. Target: peak RSS <= 9 GB; prints what the
                      dense embeddings and output head cost. Random weights are streamed layer by
                      layer into safetensors shards (never the whole model in memory) and deleted
                      after the case unless --model-dir keeps them.
                      Both run in training.precision float32 (the CPU default) unless --big-precision
                      lists others (float32,bfloat16: a run each, keyed llama3b-bfloat16, ...); the
                      dense embeddings and head are held in it. Targets in GB = 1e9 bytes (GiB printed too).

  .venv/bin/python bench/compare_quantized.py --threads 2 --steps 8 --warmup 2 --big-precision float32,bfloat16
  .venv/bin/python bench/compare_quantized.py --only 'retort-nf4*,hf-nf4*' --steps 2 --warmup 1   # a subset
  .venv/bin/python bench/compare_quantized.py --skip-big                                         # no 3B/8B

Each Retort case first asks `retort run ... --plan` for its predicted peak and reports it beside the
measured one (the issue's target: within 15%).

Every case has a timeout (--timeout, --big-timeout) and an RSS ceiling (--rss-limit-gb: the child is
killed above it); a failed case becomes a row saying why, and the run goes on.
Results: printed as tables and written to bench/results/quantized.json (or --out)."""
import argparse
import fnmatch
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "bench"))
from fetch_smollm2 import cached_gguf  # noqa: E402
from hf_loop import pack_rows, timed_loop, update  # noqa: E402
from compare_training import recipe_text, write_text_data  # noqa: E402

QUANTIZE = ("none", "int8", "nf4", "keep")
PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
GGUF_PROJECTIONS = ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")
PLAN_LINE = re.compile(r"^\s+(total at the training step's peak|loading \(the larger: the peak\))\s+(\d+)", re.M)
QUANT_LINE = re.compile(r"decoder projections quantized in memory \(model\.quantize: (\w+)\), (\d+) MiB")
MIB = 1 << 20
GB = 1e9

# Shapes of the big cases (Llama-3.2-3B and Llama-3.1-8B); vocab/tokenizer chosen at run time.
BIG = {
    "llama3b": dict(label="Llama-3.2-3B shape", hidden=3072, intermediate=8192, layers=28, heads=24, kv_heads=8,
                    tied=True, rope_theta=500000.0, rss_target_gb=5.0),
    "llama8b": dict(label="Llama-3.1-8B shape", hidden=4096, intermediate=14336, layers=32, heads=32, kv_heads=8,
                    tied=False, rope_theta=500000.0, rss_target_gb=9.0),
}


# ----------------------------------------------------------------------------------------------
# Running a child: timeout, RSS ceiling, peak RSS from wait4().

def run_measured(cmd, log_prefix: Path, timeout: float, rss_limit_mb: float, env=None, cwd=None, marker=None) -> dict:
    """Runs `cmd` in its own session with stdout/stderr to log_prefix.out/.err. Returns rc, wall
    seconds, the child's peak RSS (ru_maxrss of wait4), `error` (None when rc == 0) and, with
    `marker`, marker_peak_rss_mb: the peak so far (VmHWM) when that text first shows in stderr."""
    out_path, err_path = Path(f"{log_prefix}.out"), Path(f"{log_prefix}.err")
    start = time.monotonic()
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen([str(c) for c in cmd], stdout=out, stderr=err, env=env, cwd=cwd,
                                start_new_session=True)
    error, status, usage, current_peak, marker_peak = None, None, None, 0.0, None
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        rss = current_rss_mb(proc.pid)
        current_peak = max(current_peak, rss)
        if marker and marker_peak is None and marker in err_path.read_text(errors="replace"):
            marker_peak = current_rss_mb(proc.pid, "VmHWM:")
        if time.monotonic() - start > timeout:
            error = f"timed out after {timeout:.0f} s"
        elif rss > rss_limit_mb:
            error = f"killed: RSS {rss:.0f} MB over the --rss-limit-gb ceiling ({rss_limit_mb:.0f} MB)"
        if error:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            _, status, usage = os.wait4(proc.pid, 0)
            break
        time.sleep(0.25)
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here; keeps Popen from waiting again
    rc = proc.returncode
    if error is None and rc != 0:
        tail = err_path.read_text(errors="replace").strip().splitlines()[-3:]
        error = f"exit {rc}: " + " | ".join(line.strip() for line in tail)[-400:]
    return {"rc": rc, "wall_s": time.monotonic() - start, "peak_rss_mb": max(usage.ru_maxrss / 1024, current_peak),
            "error": error, "stdout": out_path, "stderr": err_path, "marker_peak_rss_mb": marker_peak}


def current_rss_mb(pid: int, field: str = "VmRSS:") -> float:
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith(field):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def child_env(threads: int) -> dict:
    return dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))


# ----------------------------------------------------------------------------------------------
# Models: projection sizes, the HF folder from the GGUF, random big Llamas.

def gguf_projection_weights(gguf: Path) -> int:
    import gguf as gguf_py
    reader = gguf_py.GGUFReader(str(gguf))
    return sum(int(t.n_elements) for t in reader.tensors
               if t.name.startswith("blk.") and t.name.endswith(".weight")
               and t.name.split(".")[-2] in GGUF_PROJECTIONS)


def shape_projection_weights(shape: dict) -> int:
    head_dim = shape["hidden"] // shape["heads"]
    h, kv = shape["hidden"], shape["kv_heads"] * head_dim
    return shape["layers"] * (2 * h * h + 2 * h * kv + 3 * h * shape["intermediate"])


def dequantize_worker(gguf: str, folder: str) -> None:
    """The GGUF through transformers' GGUF loader (float32, as compare_training.py loads it), saved as
    an HF folder (by hand: save_pretrained refuses a model loaded from GGUF)."""
    import torch
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM
    model = AutoModelForCausalLM.from_pretrained(str(Path(gguf).parent), gguf_file=Path(gguf).name, dtype=torch.float32)
    Path(folder).mkdir(parents=True, exist_ok=True)
    state = {name: tensor.contiguous() for name, tensor in model.state_dict().items()
             if not (model.config.tie_word_embeddings and name == "lm_head.weight")}
    save_file(state, str(Path(folder) / "model.safetensors"), metadata={"format": "pt"})
    config = model.config.to_dict()
    config.pop("quantization_config", None)
    config["architectures"] = [type(model).__name__]
    (Path(folder) / "config.json").write_text(json.dumps(config, indent=2, default=str))


def make_llama_worker(spec_path: str) -> None:
    """Writes a random Llama (bfloat16 safetensors, one shard per layer) without ever holding more
    than one layer: config.json, generation_config.json, tokenizer files, shards and the index."""
    spec = json.loads(Path(spec_path).read_text())
    import torch
    from safetensors.torch import save_file
    folder = Path(spec["folder"])
    folder.mkdir(parents=True, exist_ok=True)
    h, inter, layers = spec["hidden"], spec["intermediate"], spec["layers"]
    head_dim = h // spec["heads"]
    kv = spec["kv_heads"] * head_dim
    vocab = spec["vocab"]
    gen = torch.Generator().manual_seed(0)

    def rand(*shape):
        return torch.empty(shape, dtype=torch.bfloat16).normal_(0.0, 0.02, generator=gen)

    shards = [("embed", None)] + [("layer", i) for i in range(layers)] + ([] if spec["tied"] else [("head", None)])
    weight_map, total = {}, 0
    for index, (kind, layer) in enumerate(shards):
        name = f"model-{index + 1:05d}-of-{len(shards):05d}.safetensors"
        if kind == "embed":
            tensors = {"model.embed_tokens.weight": rand(vocab, h),
                       "model.norm.weight": torch.ones(h, dtype=torch.bfloat16)}
        elif kind == "head":
            tensors = {"lm_head.weight": rand(vocab, h)}
        else:
            p = f"model.layers.{layer}."
            tensors = {p + "self_attn.q_proj.weight": rand(h, h), p + "self_attn.k_proj.weight": rand(kv, h),
                       p + "self_attn.v_proj.weight": rand(kv, h), p + "self_attn.o_proj.weight": rand(h, h),
                       p + "mlp.gate_proj.weight": rand(inter, h), p + "mlp.up_proj.weight": rand(inter, h),
                       p + "mlp.down_proj.weight": rand(h, inter),
                       p + "input_layernorm.weight": torch.ones(h, dtype=torch.bfloat16),
                       p + "post_attention_layernorm.weight": torch.ones(h, dtype=torch.bfloat16)}
        save_file(tensors, str(folder / name), metadata={"format": "pt"})
        for key, tensor in tensors.items():
            weight_map[key] = name
            total += tensor.numel() * tensor.element_size()
        del tensors
    (folder / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2))
    config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": h,
              "intermediate_size": inter, "num_hidden_layers": layers, "num_attention_heads": spec["heads"],
              "num_key_value_heads": spec["kv_heads"], "head_dim": head_dim, "vocab_size": vocab,
              "max_position_embeddings": 131072, "rms_norm_eps": 1e-5, "rope_theta": spec["rope_theta"],
              "rope_scaling": {"rope_type": "llama3", "factor": 32.0 if spec["tied"] else 8.0, "low_freq_factor": 1.0,
                               "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
              "hidden_act": "silu", "attention_bias": False, "mlp_bias": False, "tie_word_embeddings": spec["tied"],
              "bos_token_id": spec["bos"], "eos_token_id": spec["eos"], "torch_dtype": "bfloat16"}
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    generation = {"bos_token_id": spec["bos"], "eos_token_id": spec["eos"]}
    (folder / "generation_config.json").write_text(json.dumps(generation))
    tokenizer = json.loads(Path(spec["tokenizer_json"]).read_text())
    # Llama 3's HF conversion appends <|endoftext|> at id 128256, one past the 128256-row embedding.
    tokenizer["added_tokens"] = [t for t in tokenizer["added_tokens"] if t["id"] < vocab]
    (folder / "tokenizer.json").write_text(json.dumps(tokenizer, ensure_ascii=False))
    if spec.get("tokenizer_config"):
        shutil.copy(spec["tokenizer_config"], folder / "tokenizer_config.json")
    print(json.dumps({"bytes": total}))


def big_tokenizer(fixtures: Path) -> dict:
    """Llama 3's 128256-token tokenizer from the test fixtures, else SmolLM2's 49152 (said in the output)."""
    llama3 = fixtures / "model-llama3"
    if (llama3 / "tokenizer.json").exists():
        return {"vocab": 128256, "tokenizer_json": str(llama3 / "tokenizer.json"), "bos": 128000, "eos": 128001,
                "tokenizer_config": str(llama3 / "tokenizer_config.json"),
                "tokenizer": "Llama 3 (128256, test fixture)"}
    smollm2 = fixtures / "tokenizer-smollm2" / "tokenizer.json"
    if smollm2.exists():
        return {"vocab": 49152, "tokenizer_json": str(smollm2), "bos": 1, "eos": 2, "tokenizer_config": None,
                "tokenizer": "SmolLM2 (49152: Llama 3's 128k tokenizer not at hand; "
                             "embeddings/head smaller than the real model's)"}
    raise FileNotFoundError(f"no tokenizer.json under {fixtures} (build the test fixtures: make check)")


# ----------------------------------------------------------------------------------------------
# The transformers side.

def hf_worker(spec_path: str) -> None:
    """Runs in its own process: transformers + peft (+ bitsandbytes 4-bit) on the given rows."""
    spec = json.loads(Path(spec_path).read_text())
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig
    torch.set_num_threads(spec["threads"])
    torch.manual_seed(0)
    kwargs = {}
    if spec["mode"] == "nf4":
        kwargs = {"quantization_config": BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                                            bnb_4bit_use_double_quant=True,
                                                            bnb_4bit_compute_dtype=torch.float32),
                  "device_map": "cpu"}
    model = AutoModelForCausalLM.from_pretrained(spec["model"], dtype=torch.float32, attn_implementation="sdpa",
                                                 **kwargs)
    model.config.use_cache = False
    if spec["checkpointing"]:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, task_type="CAUSAL_LM",
                                             target_modules=list(PROJECTIONS)))
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.0)
    footprint = model.get_memory_footprint()

    def train_step(ids, labels, mask):
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        return update(loss, params, optimizer)

    result = timed_loop(train_step, spec["rows"], spec["batch"], spec["steps"], spec["warmup"])
    result["weights_bytes"] = footprint
    print(json.dumps(result))


# ----------------------------------------------------------------------------------------------
# The Retort side.

def planned_peak_mb(retort: Path, recipe: Path, overrides: list, threads: int):
    """`retort run --plan`'s prediction of the peak (the larger of the step's and the load's), in MiB."""
    plan = subprocess.run([str(retort), "run", str(recipe), *overrides, "--plan"], capture_output=True, text=True,
                          timeout=300, env=child_env(threads))
    totals = [int(match.group(2)) for match in PLAN_LINE.finditer(plan.stdout)]
    return (max(totals) / MIB if totals else None), plan.stdout


def retort_case(retort: Path, recipe: Path, out: Path, overrides: list, warmup: int, log: Path, timeout: float,
                rss_limit_mb: float, threads: int) -> dict:
    shutil.rmtree(out, ignore_errors=True)  # a fresh run, not a resume
    planned, plan_text = planned_peak_mb(retort, recipe, overrides, threads)
    log.parent.mkdir(parents=True, exist_ok=True)
    Path(str(log) + ".plan").write_text(plan_text)
    # "trainable parameters: N" is printed once the model is loaded and the adapters attached.
    run = run_measured([retort, "run", recipe, *overrides], log, timeout, rss_limit_mb, env=child_env(threads),
                       marker="trainable parameters")
    result = {"status": "ok" if run["error"] is None else "failed", "error": run["error"], "wall_s": run["wall_s"],
              "peak_rss_mb": run["peak_rss_mb"], "load_peak_rss_mb": run["marker_peak_rss_mb"], "overrides": overrides,
              "planned_peak_mb": planned, "recipe": str(recipe)}
    if planned and run["peak_rss_mb"]:
        result["plan_error"] = planned / run["peak_rss_mb"] - 1
    log_text = run["stderr"].read_text(errors="replace") + run["stdout"].read_text(errors="replace")
    match = QUANT_LINE.search(log_text)
    if match:
        result["projection_mib_logged"] = int(match.group(2))
    metrics = out / "metrics.jsonl"
    lines = [json.loads(line) for line in open(metrics)] if metrics.exists() else []
    if lines:
        timed = lines[warmup:] if len(lines) > warmup else lines
        tokens = sum(line["input_tokens"] for line in timed)
        seconds = sum(line["seconds"] for line in timed)
        result.update(tokens_per_s=tokens / seconds if seconds else None, timed_steps=len(timed), steps_done=len(lines),
                      peak_rss_mb_metrics=lines[-1]["peak_rss_mb"], loss_first=lines[0]["loss"],
                      loss_last=lines[-1]["loss"], step_seconds=[round(line["seconds"], 2) for line in lines])
        if len(lines) <= warmup:
            result["note"] = f"only {len(lines)} step(s): timed them all (warmup not excluded)"
    elif result["status"] == "ok":
        result.update(status="failed", error="no metrics.jsonl written")
    return result


def failed(error: str) -> dict:
    return {"status": "failed", "error": error}


# ----------------------------------------------------------------------------------------------
# Reporting.

def fmt(value, spec=".1f", width=8):
    return f"{value:{width}{spec}}" if isinstance(value, (int, float)) else f"{'-':>{width}}"


def small_checks(runs: dict) -> dict:
    """The issue's target per quantize mode: against none (same checkpointing), peak RSS saved >= 80%
    of the projection bytes saved, and tokens/s >= 0.8x."""
    checks = {}
    for ckpt in ("", "-ckpt"):
        base = runs.get(f"retort-none{ckpt}")
        if not base or base.get("status") != "ok":
            continue
        for q in QUANTIZE[1:]:
            run = runs.get(f"retort-{q}{ckpt}")
            if not run or run.get("status") != "ok" or run.get("projection_bytes") is None:
                continue
            weights_saved = base["projection_bytes"] - run["projection_bytes"]
            rss_saved = (base["peak_rss_mb"] - run["peak_rss_mb"]) * MIB
            speed = run["tokens_per_s"] / base["tokens_per_s"]
            checks[f"{q}{ckpt}"] = {
                "projection_bytes_saved": weights_saved, "peak_rss_bytes_saved": rss_saved,
                "rss_saved_over_weights_saved": rss_saved / weights_saved if weights_saved else None,
                "memory_ok": rss_saved >= 0.8 * weights_saved, "tokens_per_s_ratio": speed, "speed_ok": speed >= 0.8}
            checks[f"{q}{ckpt}"]["pass"] = checks[f"{q}{ckpt}"]["memory_ok"] and checks[f"{q}{ckpt}"]["speed_ok"]
    return checks


def print_report(results: dict) -> None:
    runs = results["runs"]
    small = [k for k in runs if k.startswith(("retort-", "hf-"))]
    if small:
        print(f"\nSmolLM2-135M LoRA r16, text rows {results['batch']} x {results['seq']}, "
              f"{results['threads']} threads, "
              f"{results['steps']} timed steps after {results['warmup']} warmup")
        print(f"{'case':18s} {'tok/s':>8s} {'peak RSS MB':>12s} {'proj MiB':>9s}  {'loss first->last':>17s}  note")
        for key in small:
            run = runs[key]
            proj = run.get("projection_bytes")
            loss = (f"{run['loss_first']:.3f}->{run['loss_last']:.3f}" if "loss_first" in run else "-")
            note = run.get("error") or "; ".join(filter(None, [run.get("projection_source"), run.get("note")]))
            print(f"{key:18s} {fmt(run.get('tokens_per_s'))} {fmt(run.get('peak_rss_mb'), '.0f', 12)} "
                  f"{fmt(proj / MIB if proj else None, '.0f', 9)}  {loss:>17s}  {note}")
    checks = results.get("checks", {})
    if checks:
        print("\nTarget vs none (same checkpointing): peak RSS saved >= 0.8 x projection bytes saved, tok/s >= 0.8x")
        print(f"{'mode':12s} {'weights saved MB':>17s} {'RSS saved MB':>13s} {'ratio':>6s} "
              f"{'tok/s vs none':>14s}  result")
        for key, c in checks.items():
            ratio = c["rss_saved_over_weights_saved"]
            print(f"{key:12s} {c['projection_bytes_saved'] / MIB:17.0f} {c['peak_rss_bytes_saved'] / MIB:13.0f} "
                  f"{fmt(ratio, '.2f', 6)} {c['tokens_per_s_ratio']:13.2f}x  "
                  f"{'PASS' if c['pass'] else 'FAIL'} (memory {'ok' if c['memory_ok'] else 'short'}, "
                  f"speed {'ok' if c['speed_ok'] else 'short'})")
    planned = {k: r for k, r in runs.items() if r.get("plan_error") is not None}
    if planned:
        print("\nretort run --plan against the measured peak RSS (target: within 15%)")
        print(f"{'case':20s} {'planned MiB':>12s} {'measured MiB':>13s} {'error':>7s}")
        for key, r in planned.items():
            print(f"{key:20s} {r['planned_peak_mb']:12.0f} {r['peak_rss_mb']:13.0f} {100 * r['plan_error']:+6.1f}%  "
                  f"{'ok' if abs(r['plan_error']) <= 0.15 else 'OUTSIDE'}")
    ratios = results.get("vs_transformers", {})
    if ratios:
        print("\nRetort nf4 against transformers+peft (same rows, threads, AdamW)")
        print(f"{'pair':34s} {'Retort tok/s':>12s} {'theirs':>8s} {'speed':>6s} {'Retort MB':>10s} {'theirs':>8s} "
              f"{'memory':>7s}")
        for key, r in ratios.items():
            print(f"{key:34s} {r['retort_tokens_per_s']:12.1f} {r['their_tokens_per_s']:8.1f} {r['speedup']:5.2f}x "
                  f"{r['retort_peak_rss_mb']:10.0f} {r['their_peak_rss_mb']:8.0f} {r['memory_ratio']:6.2f}x")
    for key, run in runs.items():
        if not key.startswith(tuple(BIG)):
            continue
        print(f"\n{key}: {run.get('label', '')}, tokenizer {run.get('tokenizer', '?')}, LoRA r16, nf4, activation "
              f"checkpointing, seq {run.get('seq')}, micro batch 1, precision {run.get('precision')}")
        if run.get("status") != "ok":
            print(f"  FAILED: {run.get('error')}")
        if run.get("peak_rss_mb") is not None:
            target = run["rss_target_gb"]
            peak = run["peak_rss_mb"] * MIB
            verdict = "PASS" if peak <= target * GB and run.get("status") == "ok" else "FAIL"
            print(f"  peak RSS {run['peak_rss_mb']:.0f} MiB = {peak / GB:.2f} GB = {peak / 2**30:.2f} GiB: "
                  f"target <= {target:.0f} GB {verdict} "
                  f"(<= {target:.0f} GiB: {'yes' if peak <= target * 2**30 else 'no'}); "
                  f"after loading (VmHWM at 'trainable parameters'): {fmt(run.get('load_peak_rss_mb'), '.0f', 0)} MiB")
            print(f"  tok/s {fmt(run.get('tokens_per_s'), '.2f', 0)} over {run.get('timed_steps', 0)} timed step(s) "
                  f"after {run.get('warmup')} warmup; step seconds {run.get('step_seconds')}; process wall "
                  f"{fmt(run.get('wall_s'), '.0f', 0)} s")
        if run.get("projection_mib_logged") is not None:
            print(f"  NF4 projections resident: {run['projection_mib_logged']} MiB "
                  f"({run['projection_weights'] / 1e9:.2f} B weights; "
                  f"float32 would be {run['projection_weights'] * 4 / MIB:.0f} MiB)")
        if "dense_embedding_bytes" in run:
            head = ("output head: the same tensor (tied)" if run["tied"] else
                    f"output head {run['dense_head_bytes']:,} B ({run['dense_head_bytes'] / MIB:.0f} MiB)")
            print(f"  dense in {run['precision']}: embeddings {run['dense_embedding_bytes']:,} B "
                  f"({run['dense_embedding_bytes'] / MIB:.0f} MiB), {head}; in bfloat16 together "
                  f"{run['dense_bf16_bytes'] / MIB:.0f} MiB")
        if "generate_s" in run:
            print(f"  random weights written in {run['generate_s']:.0f} s ({run['model_bytes'] / GB:.1f} GB bfloat16)")

# ----------------------------------------------------------------------------------------------

def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--hf-worker":
        return hf_worker(sys.argv[2])
    if len(sys.argv) == 3 and sys.argv[1] == "--make-llama":
        return make_llama_worker(sys.argv[2])
    if len(sys.argv) == 4 and sys.argv[1] == "--dequantize":
        return dequantize_worker(sys.argv[2], sys.argv[3])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=8, help="timed steps of the SmolLM2 cases")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps before them")
    parser.add_argument("--batch", type=int, default=4, help="SmolLM2 rows a step")
    parser.add_argument("--seq", type=int, default=256, help="SmolLM2 row length")
    parser.add_argument("--big-steps", type=int, default=2, help="timed steps of the 3B case (8B: always one step)")
    parser.add_argument("--big-warmup", type=int, default=1, help="untimed steps of the 3B case")
    parser.add_argument("--big-seq", type=int, default=512)
    parser.add_argument("--big-precision", default="float32",
                        help="training.precision of the 3B/8B runs, comma-separated for several (float32,bfloat16): "
                             "the dense embeddings and head are held in it; "
                             "runs other than float32 are keyed -<precision>")
    parser.add_argument("--big-layers", type=int, default=0, help="smoke tests only: cut the 3B/8B models to N layers")
    parser.add_argument("--retort", default=str(ROOT / "build" / "bin" / "retort"))
    parser.add_argument("--fixtures", default=str(ROOT / "build" / "fixtures" / "data"),
                        help="test fixtures (tokenizer-smollm2/, model-llama3/ for Llama 3's tokenizer)")
    parser.add_argument("--only", default="", help="comma-separated cases or globs: retort-none, retort-nf4-ckpt, "
                        "retort-*, hf-nf4, hf-dense-ckpt, hf-*, llama3b, llama8b (their precisions: --big-precision)")
    parser.add_argument("--skip-big", action="store_true", help="skip llama3b and llama8b")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per SmolLM2 case")
    parser.add_argument("--big-timeout", type=float, default=3600,
                        help="seconds per 3B/8B run (not counting writing it)")
    parser.add_argument("--rss-limit-gb", type=float, default=0.0,
                        help="kill a case above this RSS (default: physical memory less 3 GB)")
    parser.add_argument("--workdir", default="", help="scratch folder (default: a temporary one under /tmp, removed)")
    parser.add_argument("--model-dir", default="", help="keep the random 3B/8B models here and reuse them")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "quantized.json"))
    parser.add_argument("--replan", action="store_true",
                        help="run nothing: ask --retort for the plan of every case in --out again (their recipes "
                             "must still be in --workdir, the 3B/8B models in --model-dir) and report")
    args = parser.parse_args()
    if args.replan:
        return replan(args)

    retort = Path(args.retort).resolve()
    fixtures = Path(args.fixtures)
    mem_total_mb = next(int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal:")) / 1024
    rss_limit_mb = args.rss_limit_gb * 1024 if args.rss_limit_gb else mem_total_mb - 3072
    patterns = [p for p in args.only.split(",") if p]

    def wanted(key):
        if args.skip_big and key in BIG:
            return False
        return not patterns or any(fnmatch.fnmatch(key, p) for p in patterns)

    small_keys = [f"retort-{q}{c}" for c in ("", "-ckpt") for q in QUANTIZE] + \
                 [f"hf-{m}{c}" for m in ("nf4", "dense") for c in ("", "-ckpt")]
    results = {"machine": os.uname().nodename, "threads": args.threads, "batch": args.batch, "seq": args.seq,
               "steps": args.steps, "warmup": args.warmup, "big_seq": args.big_seq, "big_steps": args.big_steps,
               "big_warmup": args.big_warmup, "big_precision": args.big_precision, "retort": str(retort),
               "date": time.strftime("%Y-%m-%d %H:%M"), "runs": {}}
    runs = results["runs"]
    temp_context = tempfile.TemporaryDirectory(prefix="qbench-") if not args.workdir else None
    work = Path(args.workdir or temp_context.name)
    work.mkdir(parents=True, exist_ok=True)
    logs = work / "logs"
    logs.mkdir(exist_ok=True)
    print(f"work folder {work} (logs in {logs}); RSS ceiling {rss_limit_mb:.0f} MB", flush=True)
    try:
        data = work / "texts.jsonl"
        write_text_data(data)
        if any(wanted(k) for k in small_keys):
            try:
                run_small(args, retort, work, logs, data, rss_limit_mb, wanted, results)
            except Exception as error:  # e.g. the GGUF could not be fetched: failure rows, then the big cases
                for key in small_keys:
                    if wanted(key) and key not in runs:
                        runs[key] = failed(f"{type(error).__name__}: {error}")
        for key in BIG:
            if wanted(key):
                for run_key, run in run_big(key, args, retort, fixtures, work, logs, data, rss_limit_mb).items():
                    runs[run_key] = run
                    print(f"{run_key:18s} {run.get('status')}: peak RSS {fmt(run.get('peak_rss_mb'), '.0f', 0)} MB, "
                          f"{fmt(run.get('tokens_per_s'), '.2f', 0)} tok/s {run.get('error') or ''}", flush=True)
    except KeyboardInterrupt:
        results["interrupted"] = True
        print("interrupted: reporting what finished", flush=True)
    finally:
        if temp_context:
            temp_context.cleanup()
    print_report(results)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=str))
    print(f"\nwritten to {out}")


def run_small(args, retort, work, logs, data, rss_limit_mb, wanted, results):
    runs = results["runs"]
    gguf = Path(cached_gguf())
    projection_weights = gguf_projection_weights(gguf)
    results["smollm2"] = {"gguf": str(gguf), "projection_weights": projection_weights}
    recipe = work / "smollm2.yaml"
    out = work / "smollm2-run"
    recipe.write_text(recipe_text(str(gguf), data, True, args, out, False))
    for ckpt in ("", "-ckpt"):
        for q in QUANTIZE:
            key = f"retort-{q}{ckpt}"
            if not wanted(key):
                continue
            overrides = [f"model.quantize={q}", f"training.activation_checkpointing={'true' if ckpt else 'false'}"]
            try:
                run = retort_case(retort, recipe, out, overrides, args.warmup, logs / key, args.timeout, rss_limit_mb,
                                  args.threads)
            except Exception as error:  # a broken log or metrics file: a failure row, not a crash
                run = failed(f"{type(error).__name__}: {error}")
            if q == "none":
                run.update(projection_bytes=projection_weights * 4, projection_source="float32 from the GGUF's shapes")
            elif "projection_mib_logged" in run:
                run.update(projection_bytes=run["projection_mib_logged"] * MIB, projection_source="Retort's log line")
            elif run.get("status") == "ok":
                run["projection_source"] = "Retort printed no 'base: decoder projections quantized' line"
            runs[key] = run
            print(f"{key:18s} {run['status']}: {fmt(run.get('tokens_per_s'))} tok/s, "
                  f"{fmt(run.get('peak_rss_mb'), '.0f', 6)} MB {run.get('error') or ''}", flush=True)
    results["checks"] = small_checks(runs)

    hf_keys = [f"hf-{m}{c}" for m in ("nf4", "dense") for c in ("", "-ckpt") if wanted(f"hf-{m}{c}")]
    if hf_keys:
        hf_folder = work / "smollm2-hf"
        rows = None
        try:
            # The same rows for transformers: Retort's own tokenization of the data.
            inspect = subprocess.run([str(retort), "data", "inspect", "--recipe", str(recipe), "--json"], check=True,
                                     capture_output=True, text=True, timeout=600)
            rows = pack_rows([json.loads(line) for line in inspect.stdout.splitlines()], args.seq)
            prep_error = None
            if not (hf_folder / "model.safetensors").exists():  # made once per work folder
                prep = run_measured([sys.executable, __file__, "--dequantize", gguf, hf_folder], logs / "dequantize",
                                    args.timeout, rss_limit_mb, env=child_env(args.threads))
                if prep["error"]:
                    shutil.rmtree(hf_folder, ignore_errors=True)
                    prep_error = f"dequantizing the GGUF for transformers failed: {prep['error']}"
        except Exception as error:
            prep_error = f"preparing the transformers side failed: {type(error).__name__}: {error}"
        for key in hf_keys:
            if prep_error:
                runs[key] = failed(prep_error)
                continue
            mode, ckpt = key.split("-")[1], key.endswith("-ckpt")
            spec = work / f"{key}.json"
            spec.write_text(json.dumps({"model": str(hf_folder), "mode": mode, "checkpointing": ckpt, "rows": rows,
                                        "batch": args.batch, "steps": args.steps, "warmup": args.warmup,
                                        "threads": args.threads}))
            run = run_measured([sys.executable, __file__, "--hf-worker", spec], logs / key, args.timeout, rss_limit_mb,
                               env=child_env(args.threads))
            result = {"status": "ok" if run["error"] is None else "failed", "error": run["error"],
                      "wall_s": run["wall_s"], "peak_rss_mb": run["peak_rss_mb"]}
            if run["error"] is None:
                try:
                    inner = json.loads(run["stdout"].read_text().strip().splitlines()[-1])
                    result.update(tokens_per_s=inner["tokens_per_s"], peak_rss_mb_inner=inner["peak_rss_mb"],
                                  loss_first=inner["loss_first"], loss_last=inner["loss_last"],
                                  weights_bytes=inner.get("weights_bytes"))
                    if mode == "nf4" and "Failed to load CPU gemm_4bit_forward" in run["stderr"].read_text(
                            errors="replace"):
                        result["note"] = ("bitsandbytes: no kernels-community CPU gemm_4bit "
                                          "(package `kernels` absent), its fallback")
                except (ValueError, IndexError, KeyError) as error:
                    result.update(status="failed", error=f"unreadable worker output: {error}")
            runs[key] = result
            print(f"{key:18s} {result['status']}: {fmt(result.get('tokens_per_s'))} tok/s, "
                  f"{fmt(result.get('peak_rss_mb'), '.0f', 6)} MB {result.get('error') or ''}", flush=True)
    ratios = {}
    for ckpt in ("", "-ckpt"):
        ours = runs.get(f"retort-nf4{ckpt}")
        for theirs_key in (f"hf-nf4{ckpt}", f"hf-dense{ckpt}"):
            theirs = runs.get(theirs_key)
            if ours and theirs and ours.get("status") == "ok" and theirs.get("status") == "ok":
                ratios[f"retort-nf4{ckpt} / {theirs_key}"] = {
                    "retort_tokens_per_s": ours["tokens_per_s"], "their_tokens_per_s": theirs["tokens_per_s"],
                    "speedup": ours["tokens_per_s"] / theirs["tokens_per_s"], "retort_peak_rss_mb": ours["peak_rss_mb"],
                    "their_peak_rss_mb": theirs["peak_rss_mb"],
                    "memory_ratio": ours["peak_rss_mb"] / theirs["peak_rss_mb"]}
    results["vs_transformers"] = ratios


def run_big(key, args, retort, fixtures, work, logs, data, rss_limit_mb) -> dict:
    """Writes the random model once, then one Retort run per --big-precision; returns {run key: result}."""
    shape = dict(BIG[key])
    if args.big_layers:
        shape.update(layers=args.big_layers, label=shape["label"] + f", cut to {args.big_layers} layers (smoke test)")
    precisions = [p for p in args.big_precision.split(",") if p]
    warmup, steps = (args.big_warmup, args.big_steps) if key == "llama3b" else (0, 1)
    common = {"status": "failed", "label": shape["label"], "seq": args.big_seq, "tied": shape["tied"],
              "layers": shape["layers"], "rss_target_gb": shape["rss_target_gb"], "warmup": warmup, "steps": steps}
    keys = {p: key if p == "float32" else f"{key}-{p}" for p in precisions}
    try:
        tokenizer = big_tokenizer(fixtures)
    except FileNotFoundError as error:
        return {k: dict(common, precision=p, error=str(error)) for p, k in keys.items()}
    vocab, hidden = tokenizer["vocab"], shape["hidden"]
    projection_weights = shape_projection_weights(shape)
    common.update(tokenizer=tokenizer["tokenizer"], vocab=vocab, projection_weights=projection_weights,
                  dense_bf16_bytes=vocab * hidden * 2 * (1 if shape["tied"] else 2))
    model_bytes = 2 * (projection_weights + vocab * hidden * (1 if shape["tied"] else 2)
                       + hidden * (2 * shape["layers"] + 1))
    keep = bool(args.model_dir)
    folder = (Path(args.model_dir) if keep else work) / f"{key}-v{vocab}-l{shape['layers']}"
    results = {}
    try:
        if not (folder / "model.safetensors.index.json").exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.parent.mkdir(parents=True, exist_ok=True)
            free = shutil.disk_usage(folder.parent).free
            if free < model_bytes + 2 * GB:
                error = (f"not enough disk under {folder.parent}: {free / GB:.1f} GB free, "
                         f"{model_bytes / GB:.1f} GB + 2 GB needed")
                return {k: dict(common, precision=p, error=error) for p, k in keys.items()}
            spec = work / f"{key}-make.json"
            spec.write_text(json.dumps(dict(shape, folder=str(folder), **tokenizer)))
            made = run_measured([sys.executable, __file__, "--make-llama", spec], logs / f"{key}-make",
                                args.big_timeout, rss_limit_mb, env=child_env(args.threads))
            if made["error"]:
                shutil.rmtree(folder, ignore_errors=True)
                error = f"writing the random model failed: {made['error']}"
                return {k: dict(common, precision=p, error=error) for p, k in keys.items()}
            common["generate_s"] = made["wall_s"]
        common["model_bytes"] = sum(f.stat().st_size for f in folder.glob("*.safetensors"))
        for precision, run_key in keys.items():
            dense = 4 if precision == "float32" else 2
            result = dict(common, precision=precision, dense_embedding_bytes=vocab * hidden * dense,
                          dense_head_bytes=0 if shape["tied"] else vocab * hidden * dense)
            try:
                big_args = SimpleNamespace(seq=args.big_seq, batch=1, warmup=warmup, steps=steps)
                recipe = work / f"{run_key}.yaml"
                out = work / f"{run_key}-run"
                recipe.write_text(recipe_text(str(folder), data, True, big_args, out, False))
                overrides = ["model.quantize=nf4", "training.activation_checkpointing=true",
                             f"training.precision={precision}"]
                result.update(retort_case(retort, recipe, out, overrides, warmup, logs / run_key, args.big_timeout,
                                          rss_limit_mb, args.threads))
                shutil.rmtree(out, ignore_errors=True)
            except Exception as error:
                result.update(status="failed", error=f"{type(error).__name__}: {error}")
            results[run_key] = result
    except Exception as error:
        return {k: dict(common, precision=p, error=f"{type(error).__name__}: {error}") for p, k in keys.items()}
    finally:
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)
    return results


def replan(args) -> None:
    """The plans of an earlier run's cases against its measured peaks, after the planner changed."""
    results = json.loads(Path(args.out).read_text())
    for key, run in results["runs"].items():
        if not run.get("recipe") or not Path(run["recipe"]).exists() or not run.get("peak_rss_mb"):
            continue
        planned, _ = planned_peak_mb(Path(args.retort).resolve(), Path(run["recipe"]), run["overrides"], args.threads)
        run["planned_peak_mb"] = planned
        run["plan_error"] = planned / run["peak_rss_mb"] - 1 if planned else None
    Path(args.out).write_text(json.dumps(results, indent=1))
    print_report(results)


if __name__ == "__main__":
    main()
