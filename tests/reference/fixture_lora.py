"""Oracle for applying PEFT adapters: a tiny Llama and Qwen2 base, LoRA and rsLoRA+DoRA
adapters saved by peft (with random, non-zero A, B and magnitudes), and the logits and greedy
generations of peft's PeftModel."""
import sys
from pathlib import Path

import torch
from peft import LoraConfig, get_peft_model
from safetensors.torch import save_file
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

from oracle_util import randomize_

COMMON = dict(vocab_size=80, hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, max_position_embeddings=128, rms_norm_eps=1e-5, bos_token_id=1,
              eos_token_id=None, pad_token_id=0)
ADAPTERS = {
    "lora": dict(r=4, lora_alpha=8, target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                                     "up_proj", "down_proj"]),
    "rslora_dora": dict(r=4, lora_alpha=16, use_rslora=True, use_dora=True,
                        target_modules=["q_proj", "v_proj", "down_proj"]),
}


def main():
    out = Path(sys.argv[1])
    bases = {"llama": (LlamaForCausalLM, LlamaConfig(**COMMON)),
             "qwen2": (Qwen2ForCausalLM, Qwen2Config(**COMMON, tie_word_embeddings=True))}
    ids = torch.randint(2, 80, (2, 24), generator=torch.Generator().manual_seed(3))
    for seed, (base_name, (cls, config)) in enumerate(bases.items(), start=40):
        torch.manual_seed(seed)
        base = cls(config).float().eval()
        randomize_(base, seed)
        base.save_pretrained(out / base_name)
        for adapter_seed, (adapter_name, kwargs) in enumerate(ADAPTERS.items(), start=seed * 10):
            model = get_peft_model(cls.from_pretrained(out / base_name, dtype=torch.float32),
                                   LoraConfig(task_type="CAUSAL_LM", lora_dropout=0.0, **kwargs))
            generator = torch.Generator().manual_seed(adapter_seed)
            with torch.no_grad():
                for name, param in model.named_parameters():
                    if "lora_A" in name or "lora_B" in name:
                        param.copy_(torch.randn(param.shape, generator=generator) * 0.3)
                    elif "lora_magnitude_vector" in name:
                        param.mul_(1 + 0.2 * torch.randn(param.shape, generator=generator))
            model.eval()
            adapter_dir = out / f"{base_name}-{adapter_name}"
            model.save_pretrained(adapter_dir)
            with torch.no_grad():
                logits = model(input_ids=ids).logits
                generated = model.generate(input_ids=ids[:1, :6], do_sample=False, max_new_tokens=16,
                                           pad_token_id=0)[:, 6:]
            save_file({"input_ids": ids, "logits": logits.contiguous(), "generate_prompt": ids[:1, :6].clone(),
                       "generate_ids": generated.contiguous()}, str(adapter_dir / "expected.safetensors"))


if __name__ == "__main__":
    main()
