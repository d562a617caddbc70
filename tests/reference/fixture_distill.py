"""Oracle for distill/losses: the KD divergences written out from their definitions in float64
(forward KL, reverse KL, generalized JSD as in TRL's GKD trainer, total variation; temperature
with T^2 scaling), their gradients by autograd, and the sparse top-k forms (rest bucket and
renormalised) on random logits."""
import math
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

from oracle_util import write_json

N, V, K = 12, 50, 8


def kl(log_p, log_q):
    p = log_p.exp()
    return torch.where(p > 0, p * (log_p - log_q), torch.zeros_like(p)).sum(-1)


def divergence(name, log_p, log_q, beta):
    if name == "forward_kl":
        return kl(log_p, log_q)
    if name == "reverse_kl":
        return kl(log_q, log_p)
    if name == "jsd":  # m = beta p + (1 - beta) q
        m = beta * log_p.exp() + (1 - beta) * log_q.exp()
        return beta * kl(log_p, m.log()) + (1 - beta) * kl(log_q, m.log())
    if name == "tv":
        return 0.5 * (log_p.exp() - log_q.exp()).abs().sum(-1)
    raise ValueError(name)


def dense(student, teacher, name, t, beta):
    log_q = torch.log_softmax(student / t, -1)
    log_p = torch.log_softmax(teacher / t, -1)
    return divergence(name, log_p, log_q, beta) * t * t


def sparse(student, ids, teacher_log_probs, name, t, beta, tail):
    if tail == "renormalize":
        log_p = torch.log_softmax(teacher_log_probs / t, -1)
        log_q = torch.log_softmax((student / t).gather(1, ids), -1)
    else:
        p = teacher_log_probs.exp()
        rest = (1 - p.sum(-1, keepdim=True)).clamp_min(0)
        buckets = torch.cat([teacher_log_probs, rest.log()], 1) / t
        log_p = torch.log_softmax(buckets, -1)
        q = torch.softmax(student / t, -1)
        q_top = q.gather(1, ids)
        q_rest = (1 - q_top.sum(-1, keepdim=True)).clamp_min(1e-300)
        log_q = torch.cat([q_top.log(), q_rest.log()], 1)
    return divergence(name, log_p, log_q, beta) * t * t


def main():
    out = Path(sys.argv[1])
    torch.manual_seed(0)
    student = torch.randn(N, V, dtype=torch.float64) * 2
    teacher = torch.randn(N, V, dtype=torch.float64) * 3
    teacher_log_probs = torch.log_softmax(teacher, -1)
    top = teacher_log_probs.topk(K, -1)
    full = teacher_log_probs.topk(V, -1)
    tensors = {"student": student.float(), "teacher": teacher.float(), "topk_ids": top.indices,
               "topk_log_probs": top.values.float(), "full_ids": full.indices, "full_log_probs": full.values.float()}
    cases = []
    for name in ("forward_kl", "reverse_kl", "jsd", "tv"):
        for t in (1.0, 2.0):
            beta = 0.3
            variants = [("dense", None), ("topk", "rest_bucket"), ("topk", "renormalize")]
            for kind, tail in variants:
                s = student.clone().requires_grad_(True)
                if kind == "dense":
                    values = dense(s, teacher, name, t, beta)
                else:
                    values = sparse(s, top.indices, top.values, name, t, beta, tail)
                (grad,) = torch.autograd.grad(values.sum(), s)
                key = f"{name}-{t}-{kind}-{tail}"
                tensors[key + "-values"] = values.detach().float()
                tensors[key + "-grad"] = grad.float()
                cases.append({"key": key, "divergence": name, "temperature": t, "beta": beta, "kind": kind,
                              "tail": tail or ""})
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(out / "distill.safetensors"))
    write_json(out / "cases.json", cases)
    print(f"{len(cases)} cases")


if __name__ == "__main__":
    main()
