"""Latency and throughput of inference, measured the same way for every model (students, teachers).

A request is one user's history. Latency is the wall time of single-history requests (batch 1:
what a recommendation endpoint sees), reported as p50/p95 in milliseconds; throughput is users per
second at a larger batch (what offline scoring sees). Warm-up requests are not counted.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from distill.data.dataset import Split


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({torch.get_num_threads()} threads)"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def student_latency(model, split: Split, requests: int = 200, batch_size: int = 256, warmup: int = 10) -> dict:
    """p50/p95 ms of single-history requests and users/s at `batch_size`, on the model's device."""
    model.eval()
    device = next(model.parameters()).device
    seq = torch.as_tensor(split.seq, device=device)
    len_seq = torch.as_tensor(split.len_seq, device=device)
    n = len(split)
    timings = []
    for i in range(warmup + requests):
        j = i % n
        _sync(device)
        start = time.perf_counter()
        scores = model(seq[j:j + 1], len_seq[j:j + 1])
        scores.topk(10)
        _sync(device)
        if i >= warmup:
            timings.append(time.perf_counter() - start)
    rows = min(n, max(batch_size * 4, batch_size))
    model(seq[:batch_size], len_seq[:batch_size])
    _sync(device)
    start = time.perf_counter()
    for s in range(0, rows, batch_size):
        model(seq[s:s + batch_size], len_seq[s:s + batch_size]).topk(10)
    _sync(device)
    elapsed = time.perf_counter() - start
    ms = np.array(timings) * 1000
    return {"p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95)),
            "throughput": rows / elapsed, "batch_size": batch_size, "requests": requests,
            "device": device_name(device)}


# Timed single-history requests of a teacher (BIGRec's `latency_requests` default): few, as a
# teacher request may be a whole LLM generation; bounded by TEACHER_BOUNDS["latency_requests"].
LATENCY_REQUESTS = 16
REQUEST_SPLITS = ("test", "val", "train")  # where requests come from: the first split with rows


def percentiles_ms(timings_ms) -> dict:
    """p50/p95/mean of request wall times in milliseconds (numpy's linear percentile)."""
    ms = np.asarray(timings_ms, dtype=np.float64)
    return {"p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95)),
            "mean_ms": float(ms.mean())}


def request_source(dataset) -> tuple[str, Split] | tuple[None, None]:
    """(name, split) whose histories the latency requests replay: test, else val, else train."""
    for name in REQUEST_SPLITS:
        split = dataset.split(name)
        if len(split):
            return name, split
    return None, None


def single_request_latency(request, count: int, *, warmup: int = 1, device: torch.device | None = None,
                           should_cancel=None) -> dict | None:
    """Time `request(i)` for i in 0..count-1, one at a time (batch 1), after `warmup` untimed
    `request(0)` calls; `should_cancel` is asked before every call, outside the timed window.
    None when `count` is 0. Throughput is requests/s of these sequential requests."""
    from distill.errors import raise_if_cancelled
    if count < 1:
        return None
    device = device or torch.device("cpu")
    timings = []
    for i in range(warmup + count):
        raise_if_cancelled(should_cancel)
        _sync(device)
        start = time.perf_counter()
        request(0 if i < warmup else i - warmup)
        _sync(device)
        if i >= warmup:
            timings.append(time.perf_counter() - start)
    total = sum(timings)
    return {**percentiles_ms(np.array(timings) * 1000), "throughput": count / total if total > 0 else None,
            "throughput_unit": "requests/s, single-history requests one after another",
            "batch_size": 1, "requests": count, "warmup": warmup, "device": device_name(device)}
