"""Oracle for the training loop: 10 optimizer steps of a tiny Llama, full fine-tuning and LoRA
(peft), with micro-batches of different trained-token counts, gradient accumulation normalised
by the window's trained tokens, clipping, fused AdamW (decay on >= 2-D weights only) and a
cosine schedule with warmup — written out as plain PyTorch so every rule is explicit."""
import math
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from peft import LoraConfig, get_peft_model
from safetensors.torch import save_file
from transformers import LlamaConfig, LlamaForCausalLM

from oracle_util import randomize_, write_json

STEPS, ACCUMULATION, MICRO_BATCH, LR, WARMUP, WEIGHT_DECAY, MAX_NORM = 10, 2, 2, 3e-3, 2, 0.1, 1.0
CONFIG = dict(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, max_position_embeddings=64, rms_norm_eps=1e-5, eos_token_id=None, pad_token_id=0)


def make_batches():
    g = torch.Generator().manual_seed(11)
    batches = []
    for index in range(STEPS * ACCUMULATION):
        length = 10 + 3 * (index % 4)
        ids = torch.randint(1, 64, (MICRO_BATCH, length), generator=g)
        mask = torch.ones_like(ids)
        labels = ids.clone()
        labels[:, : 2 + index % 5] = -100          # an unlearned prompt of varying length
        ids[1, length - 3:] = 0                    # right padding in the second row
        mask[1, length - 3:] = 0
        labels[1, length - 3:] = -100
        batches.append({"input_ids": ids, "labels": labels, "attention_mask": mask})
    return batches


def lr_at(step):
    if step < WARMUP:
        return LR * step / WARMUP
    progress = (step - WARMUP) / (STEPS - WARMUP)
    return LR * max(0.0, 0.5 * (1 + math.cos(math.pi * progress)))


def train(model, params, batches):
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": WEIGHT_DECAY}, {"params": no_decay, "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW([g for g in groups if g["params"]], lr=LR, betas=(0.9, 0.999), eps=1e-8,
                                  fused=True)
    history = []
    for step in range(STEPS):
        window = batches[step * ACCUMULATION:(step + 1) * ACCUMULATION]
        tokens = sum(int((b["labels"][:, 1:] != -100).sum()) for b in window)
        total = 0.0
        for b in window:
            logits = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits.float()
            loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), b["labels"][:, 1:].reshape(-1),
                                   ignore_index=-100, reduction="sum") / tokens
            loss.backward()
            total += loss.item()
        norm = torch.nn.utils.clip_grad_norm_(params, MAX_NORM).item()
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step)
        optimizer.step()
        optimizer.zero_grad()
        history.append({"step": step + 1, "loss": total, "grad_norm": norm, "lr": lr_at(step), "tokens": tokens})
    return history


def main():
    out = Path(sys.argv[1])
    batches = make_batches()
    flat = {f"{k}.{i}": v for i, b in enumerate(batches) for k, v in b.items()}
    save_file(flat, str(out / "batches.safetensors"))
    torch.manual_seed(0)
    base = LlamaForCausalLM(LlamaConfig(**CONFIG)).float()
    randomize_(base, 0)
    base.save_pretrained(out / "base")

    full = LlamaForCausalLM.from_pretrained(out / "base", dtype=torch.float32)
    full.train()
    history = train(full, list(full.parameters()), batches)
    write_json(out / "full.json", history)
    save_file({k: v.contiguous() for k, v in full.state_dict().items()}, str(out / "full_final.safetensors"))

    lora = get_peft_model(LlamaForCausalLM.from_pretrained(out / "base", dtype=torch.float32),
                          LoraConfig(task_type="CAUSAL_LM", r=4, lora_alpha=8, lora_dropout=0.0,
                                     target_modules=["q_proj", "v_proj", "down_proj"]))
    lora.save_pretrained(out / "lora_init")  # initial A (Kaiming) and B (zeros)
    lora.train()
    history = train(lora, [p for p in lora.parameters() if p.requires_grad], batches)
    write_json(out / "lora.json", history)
    write_json(out / "settings.json", {"steps": STEPS, "accumulation": ACCUMULATION, "lr": LR, "warmup": WARMUP,
                                       "weight_decay": WEIGHT_DECAY, "max_grad_norm": MAX_NORM})


if __name__ == "__main__":
    main()
