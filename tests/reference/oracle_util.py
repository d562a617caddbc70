"""Helpers shared by the fixture_*.py oracle scripts: deterministic tiny models."""
import json
import math
from pathlib import Path

import torch


def randomize_(model: torch.nn.Module, seed: int) -> None:
    """Fills every parameter with values that keep activations O(1): weights ~ N(0, 1/fan_in),
    embeddings ~ N(0, 1), norm weights ~ 1 + N(0, 0.1), biases ~ N(0, 0.1). HF's own init
    (std 0.02, zero biases, unit norms) would make near-uniform logits and hide bugs."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("norm.weight"):
                param.copy_(1 + 0.1 * torch.randn(param.shape, generator=generator))
            elif name.endswith(".bias"):
                param.copy_(0.1 * torch.randn(param.shape, generator=generator))
            elif "embed_tokens" in name:
                param.copy_(torch.randn(param.shape, generator=generator))
            else:
                param.copy_(torch.randn(param.shape, generator=generator) / math.sqrt(param.shape[-1]))


def write_json(path: Path, value) -> None:
    path.write_text(json.dumps(value, indent=2) + "\n")
