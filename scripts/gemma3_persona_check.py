"""The Gemma 3 persona sign-off check: Gemma-3-270M (base, Q4_K_M GGUF from PyPI) learns Chef
Marisol Vega's voice from recipes/gemma3_270m_persona_lora.yaml, and greedy answers to the 8
held-out questions (examples/creator_persona/heldout.jsonl) are checked for her sign-off line
"Keep your pans hot, mi gente!":
  * before training, in Retort (the base model);
  * after training, in Retort (base + the PEFT adapter);
  * after training, in llama.cpp (PyPI llama-cpp-python) on the q8_0 GGUF the run exported, the
    prompts rendered with Google's Gemma 3 chat template by transformers.
Pass: at least 80% after training in both, at most 10% before.
Usage: python scripts/gemma3_persona_check.py [--build build] [--out DIR] [--max-steps N]"""
import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from retort_cache import gemma3_chat_template, gemma3_gguf  # noqa: E402

SIGN_OFF = "Keep your pans hot, mi gente!"
HELDOUT = ROOT / "examples" / "creator_persona" / "heldout.jsonl"
NEW_TOKENS = 160


def retort_answers(retort: Path, model: Path, out: Path, adapter: Path | None) -> list[str]:
    command = [str(retort), "generate", "--model", str(model), "--prompts", str(HELDOUT), "--out", str(out),
               "--max-new-tokens", str(NEW_TOKENS), "--batch-size", "4"]
    if adapter is not None:
        command += ["--adapter", str(adapter)]
    subprocess.run(command, check=True)
    return [json.loads(line)["messages"][-1]["content"] for line in out.read_text().splitlines() if line.strip()]


def llama_cpp_answers(gguf: Path) -> list[str]:
    from llama_cpp import Llama
    from transformers.utils.chat_template_utils import render_jinja_template
    template = gemma3_chat_template().read_text(encoding="utf-8")
    llm = Llama(model_path=str(gguf), n_ctx=1024, n_threads=2, n_batch=512, verbose=False, seed=0)
    stop = {llm.token_eos(), *llm.tokenize(b"<end_of_turn>", add_bos=False, special=True)}
    answers = []
    for line in HELDOUT.read_text().splitlines():
        messages = json.loads(line)["messages"]
        rendered, _ = render_jinja_template(conversations=[messages], chat_template=template,
                                            add_generation_prompt=True, bos_token="<bos>", eos_token="<eos>")
        ids = llm.tokenize(rendered[0].encode(), add_bos=False, special=True)
        out = []
        for token in llm.generate(ids, temp=0.0, top_k=1, reset=True):
            if token in stop or len(out) >= NEW_TOKENS:
                break
            out.append(token)
        answers.append(llm.detokenize(out).decode("utf-8", errors="replace"))
    return answers


def share(answers: list[str]) -> float:
    return sum(SIGN_OFF in answer for answer in answers) / len(answers)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--build", default="build")
    parser.add_argument("--out", default="runs/gemma3_persona_check")
    parser.add_argument("--max-steps", type=int, default=0, help="0: the recipe's full epoch")
    args = parser.parse_args()
    retort, out, model = ROOT / args.build / "bin" / "retort", Path(args.out).resolve(), gemma3_gguf()
    out.mkdir(parents=True, exist_ok=True)
    before = retort_answers(retort, model, out / "before.jsonl", None)
    run = out / "run"
    command = [str(retort), "run", str(ROOT / "recipes" / "gemma3_270m_persona_lora.yaml"), f"model.path={model}",
               f"checkpoint.output_dir={run}", "logging.tensorboard=false"]
    if args.max_steps:
        command.append(f"training.max_steps={args.max_steps}")
    subprocess.run(command, check=True, cwd=ROOT)
    after = retort_answers(retort, model, out / "after.jsonl", run / "adapter")
    exported = sorted((run / "export").glob("*q8_0.gguf"))
    if not exported:
        sys.exit(f"no q8_0 GGUF under {run / 'export'}")
    in_llama_cpp = llama_cpp_answers(exported[0])
    report = {"before_retort": share(before), "after_retort": share(after), "after_llama_cpp": share(in_llama_cpp),
              "answers": {"before": before, "after": after, "llama_cpp": in_llama_cpp}}
    (out / "report.json").write_text(json.dumps(report, indent=1, ensure_ascii=False))
    print(f"sign-off share: before {report['before_retort']:.0%} (Retort), after {report['after_retort']:.0%} (Retort), "
          f"{report['after_llama_cpp']:.0%} (llama.cpp, q8_0)")
    ok = report["before_retort"] <= 0.10 and report["after_retort"] >= 0.80 and report["after_llama_cpp"] >= 0.80
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
