"""Oracle for loading models from GGUF: tiny HF models (Llama with GQA and Llama 3.1 rope
scaling; Qwen2 with biases and tied embeddings; Qwen3 with q/k norms and its own head_dim) written to GGUF by gguf-py the way llama.cpp's
converter lays them out (F32, F16, Q8_0, Q4_0), with the logits transformers computes
from the very weights the GGUF holds (dequantized by gguf-py)."""
import math
import sys
from pathlib import Path

import numpy as np
import torch
import gguf
from gguf import GGMLQuantizationType as Q
from safetensors.torch import save_file
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM, Qwen3Config, Qwen3ForCausalLM

from oracle_util import randomize_, write_json

COMMON = dict(vocab_size=96, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, max_position_embeddings=256, rms_norm_eps=1e-5, bos_token_id=1, eos_token_id=2)
GGUF_NAMES = {"input_layernorm.weight": "attn_norm.weight", "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
              "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
              "post_attention_layernorm.weight": "ffn_norm.weight", "mlp.gate_proj": "ffn_gate",
              "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down", "self_attn.q_norm": "attn_q_norm",
              "self_attn.k_norm": "attn_k_norm"}


def gguf_name(hf):
    fixed = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
             "lm_head.weight": "output.weight"}
    if hf in fixed:
        return fixed[hf]
    _, _, layer, rest = hf.split(".", 3)
    for key, value in GGUF_NAMES.items():
        if rest.startswith(key):
            return f"blk.{layer}.{value}{rest[len(key):]}"
    raise KeyError(hf)


def permute(w, heads):  # HF half-split rope rows -> llama.cpp interleaved (docs/formats.md §2.4)
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def llama3_rope_divisors(config):
    p = config.rope_parameters
    dim = config.hidden_size // config.num_attention_heads
    freqs = 1.0 / (p["rope_theta"] ** (np.arange(0, dim, 2, dtype=np.float32) / dim))
    low_wavelen = p["original_max_position_embeddings"] / p["low_freq_factor"]
    high_wavelen = p["original_max_position_embeddings"] / p["high_freq_factor"]
    out = []
    for freq in freqs:
        wavelen = 2 * math.pi / freq
        if wavelen < high_wavelen:
            out.append(1.0)
        elif wavelen > low_wavelen:
            out.append(p["factor"])
        else:
            smooth = (p["original_max_position_embeddings"] / wavelen - p["low_freq_factor"]) / (
                p["high_freq_factor"] - p["low_freq_factor"])
            out.append(1 / ((1 - smooth) / p["factor"] + smooth))
    return np.array(out, dtype=np.float32)


def write_gguf(path, arch, model, qtype):
    """Writes `model` as GGUF; returns the HF state dict holding exactly the stored values."""
    config = model.config
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_rope_freq_base(config.rope_parameters["rope_theta"])
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    writer.add_rope_dimension_count(head_dim)
    writer.add_key_length(head_dim)
    writer.add_value_length(head_dim)
    writer.add_vocab_size(config.vocab_size)
    writer.add_bos_token_id(config.bos_token_id)
    writer.add_eos_token_id(config.eos_token_id)
    writer.add_file_type({Q.F32: 0, Q.F16: 1, Q.Q4_0: 2, Q.Q8_0: 7, Q.BF16: 32}[qtype])
    if config.rope_parameters.get("rope_type") == "llama3":
        writer.add_tensor("rope_freqs.weight", llama3_rope_divisors(config))
    stored = {}
    for name, param in model.state_dict().items():
        if name == "lm_head.weight" and config.tie_word_embeddings:
            continue
        data = param.detach().float().numpy()
        heads = None
        if arch == "llama" and ".q_proj." in name:
            heads = config.num_attention_heads
        elif arch == "llama" and ".k_proj." in name:
            heads = config.num_key_value_heads
        if heads:
            data = permute(data, heads)
        if data.ndim == 1 or qtype == Q.F32:
            writer.add_tensor(gguf_name(name), data)
            back = data
        elif qtype in (Q.F16,):
            writer.add_tensor(gguf_name(name), data.astype(np.float16))
            back = data.astype(np.float16).astype(np.float32)
        else:
            raw = gguf.quants.quantize(data, qtype)
            writer.add_tensor(gguf_name(name), raw, raw_dtype=qtype)
            back = gguf.quants.dequantize(raw, qtype).reshape(data.shape)
        if heads:  # undo the permutation to get the HF-layout values
            back = back.reshape(heads, back.shape[0] // heads // 2, 2, *back.shape[1:]).swapaxes(1, 2).reshape(back.shape)
        stored[name] = torch.from_numpy(np.ascontiguousarray(back))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return stored


def main():
    out = Path(sys.argv[1])
    models = {
        "llama": ("llama", LlamaForCausalLM, LlamaConfig(**COMMON, rope_theta=500000.0, rope_scaling={
            "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
            "original_max_position_embeddings": 64})),
        "qwen2": ("qwen2", Qwen2ForCausalLM, Qwen2Config(**COMMON, tie_word_embeddings=True)),
        "qwen3": ("qwen3", Qwen3ForCausalLM, Qwen3Config(**COMMON, head_dim=24)),
    }
    ids = torch.randint(3, 90, (1, 48), generator=torch.Generator().manual_seed(5))
    manifest = []
    for seed, (name, (arch, cls, config)) in enumerate(models.items(), start=20):
        torch.manual_seed(seed)
        model = cls(config).float().eval()
        randomize_(model, seed)
        for qtype in (Q.F32, Q.F16, Q.Q8_0, Q.Q4_0):  # BF16 dequantization: fixture_gguf.py
            path = out / f"{name}-{qtype.name.lower()}.gguf"
            stored = write_gguf(path, arch, model, qtype)
            reference = cls(config).float().eval()
            missing = reference.load_state_dict(stored, strict=False)
            assert not missing.unexpected_keys, missing
            with torch.no_grad():
                logits = reference(ids).logits
            save_file({"input_ids": ids, "logits": logits.contiguous()}, str(path.with_suffix(".expected.safetensors")))
            manifest.append({"file": path.name, "type": qtype.name})
    write_json(out / "manifest.json", manifest)


if __name__ == "__main__":
    main()
