"""Oracle for `retort prune`, with transformers.
  check_prune.py make DIR TOKENIZER_DIR   a 4-layer tiny Llama (random, seed 0) with TOKENIZER_DIR's tokenizer
  check_prune.py check CASE.json          compares a pruned checkpoint with the teacher pruned here:
CASE: "teacher", "pruned" (directories), "keep" (layer indices) or "depth" (keep that many layers of
highest block importance, 1 - cos(input, output) of each layer's residual stream averaged over the
calibration tokens, computed here with forward hooks), "width" (0: unchanged),
"calibration" (lists of ids, for width), "input_ids", "retort_logits" (safetensors with Retort's
logits of the pruned checkpoint, tensor "logits" [T, V]). The reference: the teacher's decoder
layers outside "keep" deleted and, for width, each kept MLP cut to the neurons with the largest mean
|input of down_proj| over the calibration tokens (measured on the full teacher), kept in order.
Exit 1 on a mismatch."""
import copy
import json
import shutil
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM


def make(out: str, tokenizer_dir: str) -> None:
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=128256, hidden_size=64, intermediate_size=96, num_hidden_layers=4,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                         bos_token_id=128000, eos_token_id=128001, tie_word_embeddings=False)
    model = LlamaForCausalLM(config)
    with torch.no_grad():  # larger weights than the default init: layers that matter, peaked logits
        for name, p in model.named_parameters():
            if p.dim() == 2 and "embed" not in name:
                p.normal_(0, 0.15)
    model.save_pretrained(out, safe_serialization=True)
    for name in ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]:
        if (Path(tokenizer_dir) / name).exists():
            shutil.copy(Path(tokenizer_dir) / name, Path(out) / name)


def reference(teacher, keep, width, calibration):
    model = copy.deepcopy(teacher)
    layers = model.model.layers
    if width:
        sums = [torch.zeros(model.config.intermediate_size) for _ in layers]
        count = [0]
        hooks = []
        for i, layer in enumerate(layers):
            def record(module, args, i=i):
                sums[i] += args[0].reshape(-1, args[0].shape[-1]).abs().sum(0)
            hooks.append(layer.mlp.down_proj.register_forward_pre_hook(record))
        with torch.no_grad():
            for ids in calibration:
                model(torch.tensor([ids]))
                count[0] += len(ids)
        for h in hooks:
            h.remove()
        for i, layer in enumerate(layers):
            neurons = torch.topk(sums[i] / count[0], width).indices.sort().values
            mlp = layer.mlp
            for name in ["gate_proj", "up_proj"]:
                linear = getattr(mlp, name)
                setattr(mlp, name, torch.nn.Linear(linear.in_features, width, bias=False))
                getattr(mlp, name).weight.data = linear.weight.data[neurons].clone()
            down = mlp.down_proj
            mlp.down_proj = torch.nn.Linear(width, down.out_features, bias=False)
            mlp.down_proj.weight.data = down.weight.data[:, neurons].clone()
        model.config.intermediate_size = width
    model.model.layers = torch.nn.ModuleList([layers[i] for i in keep])
    for j, layer in enumerate(model.model.layers):
        layer.self_attn.layer_idx = j
    model.config.num_hidden_layers = len(keep)
    return model


def layers_by_importance(teacher, calibration, depth):
    layers = teacher.model.layers
    sums, tokens = [0.0] * len(layers), 0
    hooks = []
    for i, layer in enumerate(layers):
        def record(module, args, kwargs, output, i=i):
            x = args[0] if args else kwargs["hidden_states"]
            y = output[0] if isinstance(output, tuple) else output
            x, y = x.reshape(-1, x.shape[-1]), y.reshape(-1, y.shape[-1])
            sums[i] += (1 - torch.nn.functional.cosine_similarity(x, y, dim=1)).sum().item()
        hooks.append(layer.register_forward_hook(record, with_kwargs=True))
    with torch.no_grad():
        for ids in calibration:
            teacher(torch.tensor([ids]))
            tokens += len(ids)
    for h in hooks:
        h.remove()
    importance = [s / tokens for s in sums]
    print("block importance:", " ".join(f"{i}:{v:.5f}" for i, v in enumerate(importance)))
    order = sorted(range(len(layers)), key=lambda i: -importance[i])[:depth]
    return sorted(order)


def check(case_path: str) -> int:
    case = json.loads(Path(case_path).read_text())
    teacher = AutoModelForCausalLM.from_pretrained(case["teacher"], dtype=torch.float32).eval()
    if "depth" in case:
        case["keep"] = layers_by_importance(teacher, case["calibration"], case["depth"])
        print("layers kept by importance:", case["keep"])
    expected_model = reference(teacher, case["keep"], case["width"], case.get("calibration", []))
    pruned = AutoModelForCausalLM.from_pretrained(case["pruned"], dtype=torch.float32).eval()
    ids = torch.tensor([case["input_ids"]])
    with torch.no_grad():
        expected = expected_model(ids).logits[0]
        loaded = pruned(ids).logits[0]
        full = teacher(ids).logits[0]
    ours = load_file(case["retort_logits"])["logits"]
    failures = []
    for what, got in [("the pruned checkpoint in transformers", loaded), ("retort on the pruned checkpoint", ours)]:
        error = (got - expected).abs().max().item()
        print(f"{what}: max abs logits difference from the reference {error:.3g}")
        if error > 1e-4:
            failures.append(f"{what} differs by {error}")
    change = (full - expected).abs().max().item()
    print(f"the pruning itself moves the logits by {change:.3g}")
    if change < 1e-2:
        failures.append("pruning did not change the model: the test cannot tell")
    if pruned.config.num_hidden_layers != len(case["keep"]):
        failures.append("wrong num_hidden_layers")
    for failure in failures:
        print("FAIL:", failure)
    return 1 if failures else 0


if __name__ == "__main__":
    if sys.argv[1] == "make":
        make(sys.argv[2], sys.argv[3])
        sys.exit(0)
    sys.exit(check(sys.argv[2]))
