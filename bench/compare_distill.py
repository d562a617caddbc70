"""Distillation throughput and memory: `retort cache-teacher`, and student training online (teacher in
memory) and offline (from the cache), against a transformers KD loop (the DistillKit/TRL pattern: teacher
under no_grad, full logits of both, forward KL + cross-entropy), same machine, same torch, same threads,
same rows, one run.

Teacher: SmolLM2-135M-Instruct (the PyPI GGUF, dequantized to float32 by both). Student: the teacher
pruned by `retort prune` to 15 of its 30 layers (every weight trains; AdamW, clipping at 1.0). Loss:
0.5 * forward KL (T = 1) + 0.5 * cross-entropy on the assistant tokens of the creator-persona chats,
packed into rows of --seq tokens. Tokens/s counts every input token of the steps after --warmup; peak
memory is the process's maximum resident set.

  .venv/bin/python bench/compare_distill.py --threads 2 --steps 6 --warmup 2 --batch 4 --seq 256
On a GPU: --device cuda (both sides on cuda:0, float32; peak memory is then also the CUDA caching
allocator's peak reservation, torch.cuda.max_memory_reserved on the transformers side) and
--peak-tflops P for MFU: tokens/s x (6 x student parameters + 2 x teacher parameters, online) / P.
Two Retort builds: --baseline-build DIR times that build too, alternating with --build's
--repeats times (medians reported), against one transformers measurement.
Results: printed and written to bench/results/distill.json."""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "bench"))
from fetch_smollm2 import cached_gguf  # noqa: E402
from hf_loop import pack_rows, timed_loop, update  # noqa: E402


def recipe_text(student: str, teacher: str, data: Path, out: Path, args, cache: str = "") -> str:
    return f"""model:
  path: {student}
  device: {args.device}
data:
  train: {data}
  format: chat
  max_seq_len: {args.seq}
  packing: true
  train_on: assistant
lora:
  enabled: false
optimizer:
  lr: 1.0e-4
  max_grad_norm: 1.0
scheduler:
  name: constant
training:
  micro_batch_size: {args.batch}
  gradient_accumulation: 1
  max_steps: {args.warmup + args.steps}
  seed: 0
checkpoint:
  output_dir: {out}
  every_steps: 1000000
logging:
  tensorboard: false
distill:
  teacher: {teacher}
  teacher_cache: "{cache}"
  alpha: 0.5
  loss: forward_kl
"""


def timed(argv, threads):
    """Runs a command; returns (stdout, stderr, peak RSS in MB) via GNU time."""
    result = subprocess.run(["/usr/bin/time", "-f", "PEAK_KB %M"] + argv, check=True, capture_output=True, text=True,
                            env=dict(os.environ, OMP_NUM_THREADS=str(threads)))
    peak = int(re.search(r"PEAK_KB (\d+)", result.stderr).group(1)) / 1024
    return result.stdout, result.stderr, peak


def training_figures(out: Path, args, peak: float) -> dict:
    lines = [json.loads(line) for line in open(out / "metrics.jsonl")]
    measured = lines[args.warmup:]
    tokens = sum(line["input_tokens"] for line in measured)
    seconds = sum(line["seconds"] for line in measured)
    figures = {"tokens_per_s": tokens / seconds, "peak_rss_mb": peak, "loss_first": lines[0]["loss"],
               "loss_last": lines[-1]["loss"]}
    if "peak_gpu_mb" in lines[-1]:
        figures["peak_gpu_mb"] = lines[-1]["peak_gpu_mb"]
    return figures


def retort_figures(retort: str, student: Path, teacher: str, data: Path, folder: Path, args) -> dict:
    """cache-teacher, then online and offline student training, by one build in `folder`."""
    folder.mkdir(parents=True)
    figures = {}
    cache = folder / "cache"
    recipe = folder / "online.yaml"
    recipe.write_text(recipe_text(str(student), teacher, data, folder / "online", args))
    out, _, peak = timed([retort, "cache-teacher", str(recipe), f"distill.teacher_cache={cache}"], args.threads)
    manifest = json.loads((cache / "cache.json").read_text())
    rate = float(re.search(r"teacher: (\d+) tokens/s", out).group(1))
    figures["cache_teacher"] = {"trained_tokens_per_s": rate, "peak_rss_mb": peak,
                                "bytes_per_token": manifest["bytes_per_token"], "tokens": manifest["tokens"],
                                "top_k": manifest["top_k"]}
    if gpu := re.search(r"teacher peak GPU memory: (\d+) MB", out):
        figures["cache_teacher"]["peak_gpu_mb"] = float(gpu.group(1))
    _, _, peak = timed([retort, "run", str(recipe)], args.threads)
    figures["retort_online"] = training_figures(folder / "online", args, peak)
    offline = folder / "offline.yaml"
    offline.write_text(recipe_text(str(student), teacher, data, folder / "offline", args, str(cache)))
    _, _, peak = timed([retort, "run", str(offline)], args.threads)
    figures["retort_offline"] = training_figures(folder / "offline", args, peak)
    return figures


def median_run(runs: list) -> dict:
    """Per measurement, the run with the median rate (all rates kept beside it)."""
    result = {}
    for key in runs[0]:
        rate = "trained_tokens_per_s" if key == "cache_teacher" else "tokens_per_s"
        middle = statistics.median_low([run[key][rate] for run in runs])
        result[key] = dict(next(run[key] for run in runs if run[key][rate] == middle),
                           **{"all_" + rate: [run[key][rate] for run in runs]})
    return result


def hf_worker(spec_path: str) -> None:
    """Runs in its own process: online KD with transformers on the given rows."""
    spec = json.loads(Path(spec_path).read_text())
    import torch
    import torch.nn.functional as F
    from transformers import AutoModelForCausalLM
    torch.set_num_threads(spec["threads"])
    torch.manual_seed(0)
    device = spec["device"]
    teacher_path = Path(spec["teacher"])
    teacher = AutoModelForCausalLM.from_pretrained(str(teacher_path.parent), gguf_file=teacher_path.name,
                                                   dtype=torch.float32, attn_implementation="sdpa").eval().to(device)
    student = AutoModelForCausalLM.from_pretrained(spec["student"], dtype=torch.float32,
                                                   attn_implementation="sdpa").to(device)
    student.train()
    params = [p for p in student.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.0)

    def train_step(ids, labels, mask):
        ids, labels, mask = ids.to(device), labels.to(device), mask.to(device)
        with torch.no_grad():
            teacher_logits = teacher(input_ids=ids, attention_mask=mask).logits[:, :-1]
        student_logits = student(input_ids=ids, attention_mask=mask).logits[:, :-1]
        targets = labels[:, 1:]
        trained = targets != -100
        s, t = student_logits[trained].float(), teacher_logits[trained].float()
        ce = F.cross_entropy(s, targets[trained])
        kd = F.kl_div(F.log_softmax(s, -1), F.log_softmax(t, -1), log_target=True, reduction="batchmean")
        loss = 0.5 * kd + 0.5 * ce
        return update(loss, params, optimizer)

    figures = timed_loop(train_step, spec["rows"], spec["batch"], spec["steps"], spec["warmup"])
    if device.startswith("cuda"):
        figures["peak_gpu_mb"] = torch.cuda.max_memory_reserved() / 2**20
    figures["student_parameters"] = sum(p.numel() for p in student.parameters())
    figures["teacher_parameters"] = sum(p.numel() for p in teacher.parameters())
    print(json.dumps(figures))


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--hf-worker":
        return hf_worker(sys.argv[2])
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--examples", type=int, default=120, help="persona chats used (the cache covers them all)")
    parser.add_argument("--build", default=str(ROOT / "build"))
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--peak-tflops", type=float, default=0, help="the device's peak, for MFU (0: not reported)")
    parser.add_argument("--baseline-build", default="", help="another build to time alternately (e.g. the commit before)")
    parser.add_argument("--repeats", type=int, default=1, help="Retort runs per build (median reported)")
    args = parser.parse_args()
    retort = str(Path(args.build) / "bin" / "retort")
    teacher = str(cached_gguf())
    results = {"machine": os.uname().nodename, "threads": args.threads, "batch": args.batch, "seq": args.seq,
               "steps": args.steps, "examples": args.examples}
    with tempfile.TemporaryDirectory() as temp:
        temp = Path(temp)
        data = temp / "chats.jsonl"
        lines = open(ROOT / "examples/creator_persona/train.jsonl", encoding="utf-8").readlines()[:args.examples]
        data.write_text("".join(lines), encoding="utf-8")
        student = temp / "student"
        subprocess.run([retort, "prune", "--model", teacher, "--keep-layers", "0-9,25-29", "--out", str(student)],
                       check=True, capture_output=True, text=True)
        builds = {"": retort}
        if args.baseline_build:
            builds["baseline_"] = str(Path(args.baseline_build) / "bin" / "retort")
        runs = {prefix: [] for prefix in builds}
        for repeat in range(args.repeats):  # alternating builds, so both see the same stretch of machine time
            for prefix, binary in builds.items():
                runs[prefix].append(retort_figures(binary, student, teacher, data, temp / f"{prefix}run{repeat}", args))
        for prefix, figures in runs.items():
            results.update({prefix + key: value for key, value in median_run(figures).items()})
        recipe = temp / "run0" / "online.yaml"
        inspect = subprocess.run([retort, "data", "inspect", "--recipe", str(recipe), "--json"], check=True,
                                 capture_output=True, text=True)
        rows = pack_rows([json.loads(line) for line in inspect.stdout.splitlines()], args.seq)
        spec = temp / "hf.json"
        spec.write_text(json.dumps({"teacher": teacher, "student": str(student), "rows": rows, "batch": args.batch,
                                    "steps": args.steps, "warmup": args.warmup, "threads": args.threads,
                                    "device": args.device}))
        worker = subprocess.run([sys.executable, __file__, "--hf-worker", str(spec)], check=True, capture_output=True,
                                text=True, env=dict(os.environ, OMP_NUM_THREADS=str(args.threads)))
        results["transformers_online"] = json.loads(worker.stdout.strip().splitlines()[-1])
    base = results["transformers_online"]
    memory = "peak_gpu_mb" if args.device.startswith("cuda") else "peak_rss_mb"
    prefixes = ["", "baseline_"] if args.baseline_build else [""]
    for prefix in prefixes:
        c = results[prefix + "cache_teacher"]
        print(f"{prefix + 'cache-teacher':20s} {c['trained_tokens_per_s']:8.1f} trained tok/s {c['peak_rss_mb']:7.0f} MB  "
              f"{c['bytes_per_token']:.1f} bytes/token", flush=True)
    keys = [p + k for p in prefixes for k in ("retort_online", "retort_offline")] + ["transformers_online"]
    for key in keys:
        r = results[key]
        r["speedup_vs_transformers"] = r["tokens_per_s"] / base["tokens_per_s"]
        r["memory_vs_transformers"] = r[memory] / base[memory]
        if args.peak_tflops > 0:  # matmul FLOPs per token: the student's forward and backward, the teacher's forward
            flops = 6 * base["student_parameters"] + (0 if key.endswith("offline") else 2 * base["teacher_parameters"])
            r["mfu"] = r["tokens_per_s"] * flops / (args.peak_tflops * 1e12)
        print(f"{key:20s} {r['tokens_per_s']:8.1f} tok/s {r[memory]:7.0f} MB ({memory})  "
              f"speedup {r['speedup_vs_transformers']:.2f}x  memory {r['memory_vs_transformers']:.2f}x  "
              f"loss {r['loss_first']:.3f} -> {r['loss_last']:.3f}" + (f"  MFU {r['mfu']:.1%}" if "mfu" in r else ""),
              flush=True)
    if args.baseline_build:
        rates = {"cache_teacher": "trained_tokens_per_s", "retort_online": "tokens_per_s", "retort_offline": "tokens_per_s"}
        for key, rate in rates.items():
            new, old = results[key], results["baseline_" + key]
            print(f"{key:20s} this build / baseline {new[rate] / old[rate]:.3f} (median), "
                  f"{max(new['all_' + rate]) / max(old['all_' + rate]):.3f} (best) "
                  f"(runs {[round(t) for t in new['all_' + rate]]} vs {[round(t) for t in old['all_' + rate]]})",
                  flush=True)
    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "distill.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
