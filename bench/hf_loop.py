"""Shared pieces of the transformers baselines: Retort's row packing and a timed training loop."""
import resource
import time


def pack_rows(examples, seq):
    """Greedy packing in file order into rows of at most `seq` tokens, as Retort packs."""
    rows, ids, labels = [], [], []
    for example in examples:
        if ids and len(ids) + len(example["ids"]) > seq:
            rows.append((ids, labels))
            ids, labels = [], []
        ids = ids + example["ids"]
        labels = labels + [-100] + example["labels"][1:]
    if ids:
        rows.append((ids, labels))
    return rows


def update(loss, params, optimizer):
    """Backward, clipping at 1.0, an AdamW step; returns the loss as a float."""
    import torch
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.item()


def timed_loop(train_step, rows, batch, steps, warmup):
    """Runs `train_step(ids, labels, mask) -> loss` (forward, backward and update) on `batch` rows a
    step, cycling through `rows`; times the steps after `warmup`. Returns the figures as a dict."""
    import torch
    tokens, seconds, losses = 0, 0.0, []
    for step in range(warmup + steps):
        chosen = [rows[(step * batch + k) % len(rows)] for k in range(batch)]
        width = max(len(ids) for ids, _ in chosen)
        ids = torch.zeros((batch, width), dtype=torch.long)
        labels = torch.full((batch, width), -100, dtype=torch.long)
        mask = torch.zeros((batch, width), dtype=torch.long)
        for k, (row_ids, row_labels) in enumerate(chosen):
            ids[k, :len(row_ids)] = torch.tensor(row_ids)
            labels[k, :len(row_ids)] = torch.tensor(row_labels)
            mask[k, :len(row_ids)] = 1
        start = time.perf_counter()
        losses.append(train_step(ids, labels, mask))
        elapsed = time.perf_counter() - start
        if step >= warmup:
            tokens += int(mask.sum())
            seconds += elapsed
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"tokens_per_s": tokens / seconds, "peak_rss_mb": peak, "loss_first": losses[0], "loss_last": losses[-1]}
