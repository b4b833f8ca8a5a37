"""``clicks.next_clicks`` for a batch, in torch on the tensors' device (training on a GPU).

The same rule as the numpy reference, without a copy to the CPU: error regions (false negative,
false positive), face-connected components, the ``n`` largest per sample (ties: false negatives
first, then the component whose first voxel comes first in raster order, as ``scipy.ndimage.label``
numbers them), one click each: ``center`` at the interior-most voxel (exact Euclidean distance to
the component's border, the image border counting as border; first maximum in raster order),
``random`` uniformly among the voxels at least half the maximum distance deep. Coordinates are
voxel indices in tensor order (d, h, w) = (k, j, i).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import InputError

CHUNK_ELEMENTS = 1 << 24  # elements per block of the distance transform's min-plus step
FAR = 1e9  # "no border yet" in squared voxel distances (float32 is exact below 2**24)


def next_clicks_batch(pred: Tensor, truth: Tensor, n: int, mode: str = "center",
                      generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """``pred``, ``truth``: boolean ``[B, D, H, W]`` -> (coords ``[B, n, 3]`` float, labels ``[B, n]`` long:
    1 positive, 0 negative, -1 padding where a sample has fewer than ``n`` error components)."""
    if mode not in ("center", "random"):
        raise InputError(f"click mode must be 'center' or 'random', got '{mode}'")
    if pred.shape != truth.shape or pred.ndim != 4:
        raise InputError(f"prediction {list(pred.shape)} and truth {list(truth.shape)} must both be [B, D, H, W]")
    batch, device = pred.shape[0], pred.device
    coords = torch.zeros((batch, n, 3), device=device)
    labels = torch.full((batch, n), -1, dtype=torch.long, device=device)
    regions = torch.cat([truth & ~pred, pred & ~truth])  # false negatives of each sample, then false positives
    values = label_components(regions)
    chosen = largest_components(values, batch, n)
    if chosen is None:
        return coords, labels
    volume, value, sample, rank, positive = chosen
    masks = values[volume] == value[:, None, None, None]
    clicks = _click_voxels(masks, mode, generator)
    coords[sample, rank] = clicks.float()
    labels[sample, rank] = positive.long()
    return coords, labels


def label_components(regions: Tensor) -> Tensor:
    """Face-connected components of each boolean volume ``[V, D, H, W]``: every voxel of a component gets
    ``N - (raster index of its first voxel)`` (``N`` voxels per volume), 0 outside the regions."""
    size = regions[0].numel()
    index = torch.arange(size, 0, -1, device=regions.device).reshape(regions.shape[1:])
    values = torch.where(regions, index, 0)
    while True:
        before = values
        for dim in (1, 2, 3):
            values = _run_max(values, regions, dim)
        if torch.equal(values, before):
            return values


def _run_max(values: Tensor, regions: Tensor, dim: int) -> Tensor:
    """Each run of region voxels along ``dim`` takes its largest value."""
    lines = values.movedim(dim, -1)
    inside = regions.movedim(dim, -1)
    starts = inside.clone()
    starts[..., 1:] &= ~inside[..., :-1]
    run = torch.cumsum(starts.reshape(-1), 0) * inside.reshape(-1)  # run number, 0 outside the regions
    best = torch.zeros(run.numel() + 1, dtype=values.dtype, device=values.device)
    best.scatter_reduce_(0, run, lines.reshape(-1), "amax")
    return best[run].reshape(lines.shape).movedim(-1, dim)


def largest_components(values: Tensor, batch: int, n: int):
    """The ``n`` largest components per sample, in the reference order -> (volume, value, sample, rank,
    positive) tensors, or None without any error voxel."""
    size = values[0].numel()
    flat = values.reshape(values.shape[0], -1)
    keys = (torch.arange(values.shape[0], device=values.device)[:, None] * (size + 1) + flat)[flat > 0]
    if keys.numel() == 0:
        return None
    unique, counts = torch.unique(keys, return_counts=True)
    volume, value = unique // (size + 1), unique % (size + 1)
    sample, negative, first = volume % batch, volume // batch, size - value
    order = torch.argsort(((sample * (size + 1) + size - counts) * 2 + negative) * size + first)
    sample = sample[order]
    rank = torch.arange(order.numel(), device=values.device) - torch.searchsorted(sample, sample)
    keep = order[rank < n]
    return volume[keep], value[keep], sample[rank < n], rank[rank < n], negative[keep] == 0


def _click_voxels(masks: Tensor, mode: str, generator: torch.Generator | None) -> Tensor:
    """One voxel ``[K, 3]`` per component mask ``[K, D, H, W]`` (windows as in the reference)."""
    lo, window = _windows(masks)
    shape = [int(s) + 2 for s in window.max(0).values.tolist()]  # one voxel of border all round
    stack = torch.zeros((masks.shape[0], *shape), dtype=torch.bool, device=masks.device)
    for k, (start, extent) in enumerate(zip(lo.tolist(), window.tolist())):
        d, h, w = (slice(a, a + e) for a, e in zip(start, extent))
        stack[k, 1:1 + extent[0], 1:1 + extent[1], 1:1 + extent[2]] = masks[k, d, h, w]
    depth = squared_distance(stack).reshape(len(stack), -1)
    if mode == "center":
        flat = torch.argmax(depth, dim=1)  # first maximum in raster order, as numpy
    else:
        deep = 4 * depth >= depth.max(dim=1, keepdim=True).values  # distance >= half the maximum, exactly
        draw = torch.rand(depth.shape, device=depth.device, generator=generator)
        flat = torch.argmax(torch.where(deep & (depth > 0), draw, -1.0), dim=1)
    local = torch.stack(torch.unravel_index(flat, tuple(shape)), dim=1)
    return local - 1 + lo


def _windows(masks: Tensor) -> tuple[Tensor, Tensor]:
    """Per mask: the bounding box plus one voxel, clipped to the volume -> (start, extent) ``[K, 3]``."""
    starts, extents = [], []
    for dim in (1, 2, 3):
        present = masks.any(dim=tuple(d for d in (1, 2, 3) if d != dim))
        positions = torch.arange(present.shape[1], device=masks.device)
        first = torch.where(present, positions, present.shape[1]).amin(1)
        last = torch.where(present, positions, -1).amax(1)
        start = (first - 1).clamp(min=0)
        starts.append(start)
        extents.append((last + 2).clamp(max=present.shape[1]) - start)
    return torch.stack(starts, 1), torch.stack(extents, 1)


def squared_distance(mask: Tensor) -> Tensor:
    """Exact squared Euclidean distance (voxels) from each voxel of ``mask [K, D, H, W]`` to the nearest
    voxel outside it (0 outside); separable min-plus passes, exact in float32 for crops below 2**12."""
    distance = torch.where(mask, FAR, 0.0)
    for dim in (1, 2, 3):
        distance = _min_plus_parabola(distance, dim)
    return distance


def _min_plus_parabola(values: Tensor, dim: int) -> Tensor:
    lines = values.movedim(dim, -1)
    shape, length = lines.shape, lines.shape[-1]
    lines = lines.reshape(-1, length)
    position = torch.arange(length, device=values.device, dtype=values.dtype)
    parabola = (position[:, None] - position[None, :]) ** 2
    out = torch.empty_like(lines)
    step = max(1, CHUNK_ELEMENTS // (length * length))
    for start in range(0, lines.shape[0], step):
        out[start:start + step] = (lines[start:start + step, None, :] + parabola).amin(-1)
    return out.reshape(shape).movedim(-1, dim)
