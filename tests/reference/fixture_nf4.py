"""Oracle for NF4 bases (QLoRA) with bitsandbytes' own CPU kernels:
  codec.safetensors  per case, the float32 input and bitsandbytes' quantize_4bit(blocksize=64,
                     compress_statistics=True, quant_type="nf4") result: packed codes, absmax
                     codes, the nested absmax and code map, the offset, and dequantize_4bit's
                     float32 output (cases.json lists the cases)
  base/              a tiny Llama (float32)
  bnb/               that model loaded by transformers in 4 bits (nf4, double quantization) and
                     saved: the bitsandbytes checkpoint format
  qlora_adapter/     a peft LoRA on the 4-bit model (all projections, random B), and
  qlora.safetensors  its logits on input_ids: peft on bitsandbytes' dequantized weights (logits)
                     and bitsandbytes' CPU layer itself (bitsandbytes_logits)
  lora_init/, nf4_lora.json, settings.json  10 steps of fixture_training's loop with peft on the dense model
                     holding bitsandbytes' dequantized weights (the QLoRA function, in float32)
"""
import sys
from pathlib import Path

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from safetensors.torch import save_file
from transformers import BitsAndBytesConfig, LlamaConfig, LlamaForCausalLM

import bitsandbytes.functional as bnbf
import fixture_training as training
from oracle_util import randomize_, write_json


# fixture_training's model with widths bitsandbytes' CPU layer accepts (in_features >= 64).
CONFIG = dict(training.CONFIG, hidden_size=64, intermediate_size=128)


def codec_cases():
    g = torch.Generator().manual_seed(5)
    cases = {
        "normal": torch.randn(96, 256, generator=g) * 0.02,
        # 300 blocks of 64: the nested absmax has a partial last block of 256.
        "partial_nested": torch.randn(150, 128, generator=g),
        "outliers": torch.randn(32, 128, generator=g).masked_fill(torch.rand(32, 128, generator=g) < 0.01, 8.0),
        "bf16_source": (torch.randn(64, 64, generator=g) * 0.1).bfloat16().float(),
    }
    zeros = torch.randn(16, 128, generator=g)
    zeros[0, :64] = 0  # an all-zero block
    cases["zero_block"] = zeros
    # Block maxima 1 + t/2 with t near the dynamic map's lowest values: the nested codes land
    # between map entries 0 and 1, where rounding rules would show.
    t = torch.zeros(256)
    t[:8] = torch.tensor([-1.0, -0.988, -0.9875, -0.986, 1.0, 0.988, 0.9875, 0.986])
    crafted = torch.rand(256, 64, generator=g) * 0.1
    crafted[:, 5] = 1 + t / 2
    cases["nested_ties"] = crafted
    return cases


def write_codec(out: Path):
    tensors = {}
    for name, value in codec_cases().items():
        packed, state = bnbf.quantize_4bit(value.contiguous(), blocksize=64, compress_statistics=True, quant_type="nf4")
        tensors[f"{name}.input"] = value.contiguous()
        tensors[f"{name}.codes"] = packed.reshape(-1).contiguous()
        tensors[f"{name}.absmax_codes"] = state.absmax.reshape(-1).contiguous()
        tensors[f"{name}.absmax_scales"] = state.state2.absmax.reshape(-1).float().contiguous()
        tensors[f"{name}.absmax_offset"] = state.offset.reshape(1).float().contiguous()
        tensors[f"{name}.nested_code"] = state.state2.code.float().contiguous()
        tensors[f"{name}.nf4_code"] = state.code.float().contiguous()
        tensors[f"{name}.dequantized"] = bnbf.dequantize_4bit(packed, state).float().contiguous()
    save_file(tensors, str(out / "codec.safetensors"))
    write_json(out / "cases.json", sorted(codec_cases()))


def quantized_model(base: Path):
    config = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                bnb_4bit_compute_dtype=torch.float32)
    return LlamaForCausalLM.from_pretrained(base, quantization_config=config, device_map="cpu")


def dequantized_dense(base: Path, quantized) -> LlamaForCausalLM:
    """The dense float32 model holding bitsandbytes' dequantized weights where it quantized."""
    dense = LlamaForCausalLM.from_pretrained(base, dtype=torch.float32)
    modules = dict(quantized.named_modules())
    with torch.no_grad():
        for name, module in dense.named_modules():
            source = modules.get(name)
            if hasattr(getattr(source, "weight", None), "quant_state"):
                module.weight.copy_(bnbf.dequantize_4bit(source.weight.data, source.weight.quant_state).float())
    return dense


def main():
    out = Path(sys.argv[1])
    write_codec(out)
    torch.manual_seed(0)
    base = LlamaForCausalLM(LlamaConfig(**CONFIG)).float()
    randomize_(base, 0)
    base.save_pretrained(out / "base")

    quantized = quantized_model(out / "base")
    quantized.save_pretrained(out / "bnb")
    torch.manual_seed(1)
    qlora = get_peft_model(quantized, LoraConfig(task_type="CAUSAL_LM", r=4, lora_alpha=8, lora_dropout=0.0,
                                                 target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                                                 "up_proj", "down_proj"]))
    with torch.no_grad():
        for name, param in qlora.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape) * 0.2)
    qlora.eval()
    input_ids = torch.randint(1, CONFIG["vocab_size"], (2, 12), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        logits = qlora(input_ids=input_ids).logits.float()
    qlora.save_pretrained(out / "qlora_adapter")
    # The same adapter on the dense model holding bitsandbytes' dequantized weights: the function
    # the QLoRA model defines, in float32 (bitsandbytes' CPU layer itself computes less exactly).
    # Fresh 4-bit loads: bitsandbytes repacks a layer's weight for its CPU kernel on first use.
    applied = PeftModel.from_pretrained(dequantized_dense(out / "base", quantized_model(out / "base")),
                                        out / "qlora_adapter").eval()
    with torch.no_grad():
        exact = applied(input_ids=input_ids).logits.float()
    save_file({"input_ids": input_ids, "logits": exact.contiguous(), "bitsandbytes_logits": logits.contiguous()},
              str(out / "qlora.safetensors"))

    dense = dequantized_dense(out / "base", quantized_model(out / "base"))
    lora = get_peft_model(dense, LoraConfig(task_type="CAUSAL_LM", r=4, lora_alpha=8, lora_dropout=0.0,
                                            target_modules=["q_proj", "v_proj", "down_proj"]))
    lora.save_pretrained(out / "lora_init")
    lora.train()
    batches = training.make_batches()
    save_file({f"{k}.{i}": v for i, b in enumerate(batches) for k, v in b.items()}, str(out / "batches.safetensors"))
    history = training.train(lora, [p for p in lora.parameters() if p.requires_grad], batches)
    write_json(out / "nf4_lora.json", history)
    write_json(out / "settings.json", {"steps": training.STEPS, "accumulation": training.ACCUMULATION,
                                       "lr": training.LR, "warmup": training.WARMUP,
                                       "weight_decay": training.WEIGHT_DECAY, "max_grad_norm": training.MAX_NORM})


if __name__ == "__main__":
    main()
