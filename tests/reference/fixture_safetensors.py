"""Oracle for the safetensors reader: files written by the reference library (every dtype
LibTorch can hold, with their values as JSON), and an HF checkpoint saved in shards."""
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import LlamaConfig, LlamaForCausalLM

from oracle_util import randomize_, write_json


def main():
    out = Path(sys.argv[1])
    g = torch.Generator().manual_seed(7)
    floats = torch.randn(3, 5, generator=g) * 10
    tensors = {
        "f32": floats, "f64": floats.double(), "f16": floats.half(), "bf16": floats.bfloat16(),
        "i8": torch.randint(-128, 127, (4, 3), generator=g).to(torch.int8),
        "u8": torch.randint(0, 255, (7,), generator=g).to(torch.uint8),
        "i16": torch.randint(-30000, 30000, (2, 2), generator=g).to(torch.int16),
        "i32": torch.randint(-2**31, 2**31 - 1, (5,), generator=g, dtype=torch.int64).to(torch.int32),
        "i64": torch.randint(-2**62, 2**62, (2, 3), generator=g, dtype=torch.int64),
        "bool": torch.rand(6, generator=g) > 0.5,
        "f8_e4m3": floats.clamp(-400, 400).to(torch.float8_e4m3fn),
        "f8_e5m2": floats.to(torch.float8_e5m2),
        "scalar": torch.tensor(3.5),
        "empty": torch.zeros(0, 4),
    }
    save_file(tensors, str(out / "dtypes.safetensors"), metadata={"format": "pt", "note": "oracle"})
    write_json(out / "dtypes.json", {
        name: {"shape": list(t.shape), "values": (t.double() if t.is_floating_point() else t.long())
               .flatten().tolist()} for name, t in tensors.items()})

    torch.manual_seed(3)
    config = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=64)
    model = LlamaForCausalLM(config).float()
    randomize_(model, 3)
    model.save_pretrained(out / "sharded", max_shard_size="12KB")
    ids = torch.tensor([[3, 9, 27, 17, 51, 4, 33]])
    with torch.no_grad():
        save_file({"input_ids": ids, "logits": model(ids).logits.float().contiguous()},
                  str(out / "sharded_expected.safetensors"))
    shards = sorted(p.name for p in (out / "sharded").glob("model-*.safetensors"))
    assert len(shards) >= 3, shards


if __name__ == "__main__":
    main()
