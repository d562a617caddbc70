"""Oracle for the model core: tiny Llama / Llama-3.1-rope / Mistral / Qwen2 / Qwen3 / Gemma 3 models made with
transformers, saved as HF checkpoints, with the logits, greedy generations, loss and
gradients transformers computes for them (float32, CPU, fixed seeds)."""
import json
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import (Gemma3ForCausalLM, Gemma3TextConfig, LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM,
                          Qwen2Config, Qwen2ForCausalLM, Qwen3Config, Qwen3ForCausalLM)

from oracle_util import randomize_, write_json

VOCAB = 96
COMMON = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=112, num_hidden_layers=2,
              num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
              rms_norm_eps=1e-5, bos_token_id=1, eos_token_id=VOCAB - 1, pad_token_id=0)


def make_models():
    return {
        "llama_gqa": (LlamaForCausalLM, LlamaConfig(**COMMON, rope_theta=10000.0)),
        "llama31_rope": (LlamaForCausalLM, LlamaConfig(
            **dict(COMMON, hidden_size=32, num_attention_heads=2, num_key_value_heads=1),
            rope_theta=500000.0,
            rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                          "high_freq_factor": 4.0, "original_max_position_embeddings": 64})),
        "mistral_window": (MistralForCausalLM, MistralConfig(**COMMON, sliding_window=8, head_dim=16)),
        "qwen2_tied": (Qwen2ForCausalLM, Qwen2Config(**dict(COMMON, num_key_value_heads=1),
                                                     tie_word_embeddings=True)),
        # Qwen3: q/k norms, head_dim apart from hidden/heads, sliding layers from max_window_layers.
        "qwen3_window": (Qwen3ForCausalLM, Qwen3Config(**COMMON, head_dim=24, use_sliding_window=True,
                                                       sliding_window=8, max_window_layers=1)),
        "qwen3_tied": (Qwen3ForCausalLM, Qwen3Config(**dict(COMMON, num_key_value_heads=1), head_dim=16,
                                                     tie_word_embeddings=True, rope_theta=1000000.0)),
        # Gemma 3: a local (window 8, base 1e4) then a global (base 1e6) layer, sandwich norms,
        # (1 + w) norms, sqrt(hidden) embedding scale, query_pre_attn_scalar apart from head_dim.
        "gemma3_local_global": (Gemma3ForCausalLM, Gemma3TextConfig(
            **COMMON, head_dim=16, query_pre_attn_scalar=24, sliding_window=8,
            layer_types=["sliding_attention", "full_attention"], rope_theta=1000000.0,
            rope_local_base_freq=10000.0)),
        # Gemma 3 4B-style RoPE: the global layers scale linearly (factor 8), the local ones do not.
        "gemma3_scaled": (Gemma3ForCausalLM, Gemma3TextConfig(
            **COMMON, head_dim=16, query_pre_attn_scalar=16, sliding_window=8,
            layer_types=["sliding_attention", "full_attention"], rope_theta=1000000.0,
            rope_local_base_freq=10000.0, rope_scaling={"rope_type": "linear", "factor": 8.0})),
    }


def greedy(model, prompt, attention_mask=None, new_tokens=32):
    out = model.generate(prompt, attention_mask=attention_mask, do_sample=False,
                         max_new_tokens=new_tokens, pad_token_id=0)
    return out[:, prompt.shape[1]:]


def build(name, cls, config, out: Path, seed: int):
    torch.manual_seed(seed)
    config._attn_implementation = "sdpa"
    model = cls(config).float()
    randomize_(model, seed)
    model.eval()
    generator = torch.Generator().manual_seed(seed + 1)
    expected = {}
    ids = torch.randint(2, VOCAB - 1, (2, 40), generator=generator)

    # Random models repeat themselves; pick as EOS a token no test generation emits, so every
    # greedy run makes its full length (EOS handling is tested with real models elsewhere).
    model.generation_config.eos_token_id = None
    with torch.no_grad():
        emitted = set(greedy(model, ids[:1, :8]).flatten().tolist())
        emitted |= set(model.generate(ids[:, :12], do_sample=False, max_new_tokens=16,
                                      pad_token_id=0).flatten().tolist())
    eos = max(set(range(2, VOCAB)) - emitted)
    model.config.eos_token_id = eos
    model.generation_config.eos_token_id = eos
    model_dir = out / name
    model.save_pretrained(model_dir, safe_serialization=True)
    with torch.no_grad():
        expected["input_ids"] = ids
        expected["logits"] = model(ids).logits.float()

        # Left-padded batch: row 0 has 5 pads; positions restart at the first real token.
        padded = ids[:, :24].clone()
        mask = torch.ones_like(padded)
        padded[0, :5] = 0
        mask[0, :5] = 0
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        expected["padded_input_ids"] = padded
        expected["padded_attention_mask"] = mask
        expected["padded_position_ids"] = positions
        expected["padded_logits"] = model(padded, attention_mask=mask, position_ids=positions).logits.float()

        # Greedy generation: one prompt, then the padded batch (HF derives positions from the mask).
        prompt = ids[:1, :8]
        expected["generate_prompt"] = prompt
        expected["generate_ids"] = greedy(model, prompt)
        expected["batch_generate_prompt"] = padded[:, :12]
        expected["batch_generate_mask"] = mask[:, :12]
        expected["batch_generate_ids"] = greedy(model, padded[:, :12], mask[:, :12], new_tokens=16)

    # `retort eval` reference: summed token loss over sequences of different lengths.
    with torch.no_grad():
        lines, loss_sum, tokens = [], 0.0, 0
        for length in (5, 17, 40, 9):
            seq = ids[length % 2, :length]
            loss_sum += model(seq[None], labels=seq[None]).loss.double().item() * (length - 1)
            tokens += length - 1
            lines.append({"ids": seq.tolist()})
        (model_dir / "eval.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
        write_json(model_dir / "eval_expected.json", {"loss": loss_sum / tokens, "tokens": tokens})

    # Loss and gradients after one backward (labels with ignored positions).
    labels = ids.clone()
    labels[:, :6] = -100
    labels[1, 20:25] = -100
    model.zero_grad()
    loss = model(ids, labels=labels).loss
    loss.backward()
    expected["labels"] = labels
    expected["loss"] = loss.detach().reshape(1)
    for param_name, param in model.named_parameters():
        expected["grad." + param_name] = param.grad.detach().clone()
    save_file({k: v.detach().clone().contiguous() for k, v in expected.items()}, str(model_dir / "expected.safetensors"))
    return {"name": name, "generated": expected["generate_ids"].shape[1]}


def main():
    out = Path(sys.argv[1])
    torch.set_num_threads(2)
    summary = [build(name, cls, config, out, seed) for seed, (name, (cls, config))
               in enumerate(make_models().items(), start=10)]
    write_json(out / "summary.json", summary)
    for item in summary:
        print(item)


if __name__ == "__main__":
    main()
