"""Training throughput and peak memory: `retort run` against transformers + peft, same machine,
same torch, same threads, same row shapes, same optimizer (AdamW, clipping at 1.0), in one run.

Models: SmolLM2-135M-Instruct and Gemma-3-270M (the PyPI GGUFs, dequantized to float32 by both)
and a ~110M random-init Llama. Gemma's 262k-token vocabulary makes the output head most of the
model: its rows print the head's share of the step's multiply-adds, and the peak memory shows what
Retort's chunked loss (no [tokens x V] logits at once) saves against transformers' full logits. Modes: LoRA (rank 16 on all seven projections) and full fine-tuning. Data:
text rows of exactly --seq tokens (the creator-persona texts, tokenized by Retort; the same ids
are fed to transformers). Each side runs in its own process; tokens/s counts every input token
of the steps after --warmup; peak RSS is the process's maximum resident memory.

  .venv/bin/python bench/compare_training.py --threads 2 --steps 8 --warmup 2 --batch 4 --seq 256

Two Retort builds (a refactor against the commit before it): --baseline-build DIR runs that
build's retort too, alternating with --build's --repeats times per case (medians reported), so
both speedups share one transformers measurement and the same stretch of machine time.
Results: printed and written to bench/results/training.json."""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "bench"))
from fetch_smollm2 import cached_gguf  # noqa: E402
from retort_cache import gemma3_gguf  # noqa: E402
from hf_loop import pack_rows, timed_loop, update  # noqa: E402


def write_text_data(path: Path) -> None:
    """Plain-text documents from the creator-persona example (posts and assistant answers)."""
    with open(path, "w", encoding="utf-8") as out:
        for line in open(ROOT / "examples/creator_persona/posts.jsonl", encoding="utf-8"):
            out.write(json.dumps({"text": json.loads(line)["text"]}) + "\n")
        for line in open(ROOT / "examples/creator_persona/train.jsonl", encoding="utf-8"):
            text = "\n\n".join(m["content"] for m in json.loads(line)["messages"] if m["role"] != "system")
            out.write(json.dumps({"text": text}) + "\n")


def make_random_llama(folder: Path, tokenizer_json: Path) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=49152, hidden_size=768, intermediate_size=2048, num_hidden_layers=12,
                         num_attention_heads=12, num_key_value_heads=4, max_position_embeddings=2048,
                         tie_word_embeddings=True, bos_token_id=1, eos_token_id=2)
    LlamaForCausalLM(config).save_pretrained(folder)
    (folder / "tokenizer.json").write_bytes(tokenizer_json.read_bytes())


def recipe_text(model: str, data: Path, lora: bool, args, out: Path, chat: bool) -> str:
    data_section = (f"""  train: {ROOT / "examples/creator_persona/train.jsonl"}
  format: chat
  max_seq_len: {args.seq}
  packing: true
  train_on: assistant""" if chat else f"""  train: {data}
  format: text
  max_seq_len: {args.seq}
  length_policy: split
  packing: true
  train_on: all""")
    return f"""model:
  path: {model}
data:
{data_section}
lora:
  enabled: {str(lora).lower()}
  rank: 16
  alpha: 32
  dropout: 0.05
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
export:
  formats: []
"""


def run_retort(retort: Path, recipe: Path, out: Path, args) -> dict:
    subprocess.run([str(retort), "run", str(recipe)], check=True, capture_output=True, text=True,
                   env=dict(os.environ, OMP_NUM_THREADS=str(args.threads)))
    lines = [json.loads(line) for line in open(out / "metrics.jsonl")]
    timed = lines[args.warmup:]
    tokens = sum(line["input_tokens"] for line in timed)
    seconds = sum(line["seconds"] for line in timed)
    return {"tokens_per_s": tokens / seconds, "peak_rss_mb": lines[-1]["peak_rss_mb"],
            "loss_first": lines[0]["loss"], "loss_last": lines[-1]["loss"]}


def run_builds(builds: dict, recipe: Path, out: Path, args) -> dict:
    """Each build's run, alternating, --repeats times; the run with the median tokens/s of each."""
    runs = {name: [] for name in builds}
    for _ in range(args.repeats):
        for name, binary in builds.items():
            shutil.rmtree(out, ignore_errors=True)  # a fresh run, not a resume
            runs[name].append(run_retort(binary, recipe, out, args))
    median = {}
    for name, results in runs.items():
        middle = statistics.median_low([r["tokens_per_s"] for r in results])
        median[name] = dict(next(r for r in results if r["tokens_per_s"] == middle),
                            all_tokens_per_s=[r["tokens_per_s"] for r in results])
    return median


def head_share(gguf: str) -> float:
    """The output head's share of a LoRA step's multiply-adds per trained token (forward plus the
    input gradient; frozen weights get none): V*H for the head against the decoder's projections."""
    import gguf as gguf_py
    reader = gguf_py.GGUFReader(gguf)
    arch = str(bytes(reader.fields["general.architecture"].parts[-1]), "utf-8")
    hidden = int(reader.fields[f"{arch}.embedding_length"].parts[-1][0])
    head = next(int(t.n_elements) for t in reader.tensors if t.name in ("output.weight", "token_embd.weight"))
    body = sum(int(t.n_elements) for t in reader.tensors if t.name.startswith("blk.") and t.name.endswith("weight")
               and len(t.shape) == 2)
    assert head % hidden == 0
    return head / (head + body)


def hf_worker(spec_path: str) -> None:
    """Runs in its own process: the transformers(+peft) loop on the given rows."""
    spec = json.loads(Path(spec_path).read_text())
    import torch
    from transformers import AutoModelForCausalLM
    torch.set_num_threads(spec["threads"])
    torch.manual_seed(0)
    kwargs = {"gguf_file": Path(spec["model"]).name} if spec["model"].endswith(".gguf") else {}
    folder = str(Path(spec["model"]).parent) if kwargs else spec["model"]
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, attn_implementation="sdpa", **kwargs)
    if spec["lora"]:
        from peft import LoraConfig, get_peft_model
        model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, task_type="CAUSAL_LM",
                                                 target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                                                 "up_proj", "down_proj"]))
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.0)

    def train_step(ids, labels, mask):
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        return update(loss, params, optimizer)

    print(json.dumps(timed_loop(train_step, spec["rows"], spec["batch"], spec["steps"], spec["warmup"])))


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--hf-worker":
        return hf_worker(sys.argv[2])
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--build", default=str(ROOT / "build"))
    parser.add_argument("--only", default="", help="comma-separated subset: smollm2-lora,smollm2-full,llama100m-lora,...")
    parser.add_argument("--baseline-build", default="", help="another build to time alternately (e.g. the commit before)")
    parser.add_argument("--repeats", type=int, default=1, help="Retort runs per build and case (median reported)")
    args = parser.parse_args()
    retort = Path(args.build) / "bin" / "retort"
    builds = {"retort": retort}
    if args.baseline_build:
        builds["retort_baseline"] = Path(args.baseline_build) / "bin" / "retort"
    tokenizer_json = Path(args.build) / "fixtures" / "data" / "tokenizer-smollm2" / "tokenizer.json"
    results = {"machine": os.uname().nodename, "threads": args.threads, "batch": args.batch, "seq": args.seq,
               "steps": args.steps, "runs": {}}
    with tempfile.TemporaryDirectory() as temp:
        temp = Path(temp)
        data = temp / "texts.jsonl"
        write_text_data(data)
        random_llama = temp / "llama100m"
        make_random_llama(random_llama, tokenizer_json)
        models = {"smollm2": str(cached_gguf()), "llama100m": str(random_llama), "gemma3": str(gemma3_gguf())}
        cases = [(name, mode, "text") for name in ("smollm2", "llama100m") for mode in ("lora", "full")]
        cases.append(("smollm2", "lora", "chat"))  # assistant-only SFT on the persona chats
        cases += [("gemma3", "lora", "text"), ("gemma3", "lora", "chat")]
        for name, mode, data_kind in cases:
            model = models[name]
            key = f"{name}-{mode}" + ("-chat" if data_kind == "chat" else "")
            if args.only and key not in args.only.split(","):
                continue
            out = temp / key
            recipe = temp / f"{key}.yaml"
            recipe.write_text(recipe_text(model, data, mode == "lora", args, out, data_kind == "chat"))
            timed = run_builds(builds, recipe, out, args)
            ours = timed["retort"]
            # The same rows for transformers: Retort's own tokenization of the data.
            inspect = subprocess.run([str(retort), "data", "inspect", "--recipe", str(recipe), "--json"],
                                     check=True, capture_output=True, text=True)
            rows = pack_rows([json.loads(line) for line in inspect.stdout.splitlines()], args.seq)
            spec = temp / f"{key}.json"
            spec.write_text(json.dumps({"model": model, "lora": mode == "lora", "rows": rows, "batch": args.batch,
                                        "steps": args.steps, "warmup": args.warmup, "threads": args.threads}))
            worker = subprocess.run([sys.executable, __file__, "--hf-worker", str(spec)], check=True,
                                    capture_output=True, text=True,
                                    env=dict(os.environ, OMP_NUM_THREADS=str(args.threads)))
            theirs = json.loads(worker.stdout.strip().splitlines()[-1])
            results["runs"][key] = {"retort": ours, "transformers_peft": theirs,
                                    "speedup": ours["tokens_per_s"] / theirs["tokens_per_s"],
                                    "memory_ratio": ours["peak_rss_mb"] / theirs["peak_rss_mb"]}
            if "retort_baseline" in timed:
                base = timed["retort_baseline"]
                results["runs"][key].update(retort_baseline=base,
                                            speedup_baseline=base["tokens_per_s"] / theirs["tokens_per_s"])
            print(f"{key:16s} retort {ours['tokens_per_s']:8.1f} tok/s {ours['peak_rss_mb']:7.0f} MB | "
                  f"transformers+peft {theirs['tokens_per_s']:8.1f} tok/s {theirs['peak_rss_mb']:7.0f} MB | "
                  f"speedup {results['runs'][key]['speedup']:.2f}x, memory {results['runs'][key]['memory_ratio']:.2f}x",
                  flush=True)
            if name == "gemma3":
                share = head_share(model)
                results["runs"][key]["head_share_of_multiply_adds"] = share
                print(f"{'':16s} output head [262144 x 640]: {share:.0%} of a LoRA step's multiply-adds", flush=True)
            if "retort_baseline" in timed:
                run = results["runs"][key]
                print(f"{'':16s} baseline build {run['retort_baseline']['tokens_per_s']:8.1f} tok/s "
                      f"{run['retort_baseline']['peak_rss_mb']:7.0f} MB: speedup {run['speedup_baseline']:.2f}x; "
                      f"this build / baseline {run['speedup'] / run['speedup_baseline']:.3f} (median), "
                      f"{max(ours['all_tokens_per_s']) / max(run['retort_baseline']['all_tokens_per_s']):.3f} (best) "
                      f"(runs {[round(t) for t in ours['all_tokens_per_s']]} vs "
                      f"{[round(t) for t in run['retort_baseline']['all_tokens_per_s']]})", flush=True)
    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "training.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
