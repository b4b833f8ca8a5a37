"""Slice-wise engines on a GPU: features of many slices per forward pass.

The batch size comes from the GPU's free memory and an engine's estimate of the memory one
slice needs; an out-of-memory error halves the batch and retries (down to one slice, which
then raises). On the CPU nothing is batched: engines keep computing one slice at a time.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Sequence

import torch

from .base import SliceCache

log = logging.getLogger(__name__)
FREE_FRACTION = 0.6  # of the free GPU memory a batch may take


def batch_size(device: str, bytes_per_slice: float, limit: int) -> int:
    """Slices per batch on ``device``: 1 on the CPU, else what fits in ``FREE_FRACTION`` of free memory."""
    if torch.device(device).type != "cuda":
        return 1
    free, _ = torch.cuda.mem_get_info(torch.device(device))
    return int(max(1, min(limit, FREE_FRACTION * free // bytes_per_slice)))


def run_batched(keys: Sequence, compute: Callable[[list], list], size: int) -> list:
    """``compute`` over ``keys`` in chunks of ``size``; on out-of-memory the chunk size halves."""
    results: list = []
    start = 0
    while start < len(keys):
        chunk = list(keys[start:start + size])
        try:
            results.extend(compute(chunk))
        except torch.OutOfMemoryError:
            if size == 1:
                raise
            size //= 2
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            log.warning("out of GPU memory with %d slices per batch; retrying with %d", len(chunk), size)
            continue
        start += len(chunk)
    return results


def prefetch(cache: SliceCache, keys: Sequence[int], compute: Callable[[list], list], device: str,
             bytes_per_slice: float, limit: int) -> None:
    """Fill ``cache`` with the features of ``keys`` it lacks, computed in GPU batches (no-op on the CPU)."""
    size = batch_size(device, bytes_per_slice, limit)
    if size == 1:
        return
    cached = set(cache.keys)
    missing = [k for k in dict.fromkeys(keys) if k not in cached][:cache.size]
    for k, value in zip(missing, run_batched(missing, compute, size)):
        cache.get(k, _constant(value))


def _constant(value: Any) -> Callable[[], Any]:
    return lambda: value
