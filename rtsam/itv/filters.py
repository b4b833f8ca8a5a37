"""Phase-coherent post-processing of per-phase masks over the cyclic phase order.

* transient components: a connected component of phase k overlapping nothing in phases
  k +- 1 (cyclic) is a false positive and is removed;
* temporal vote: voxel-wise majority (binary) or median (probabilities) over a window of
  neighbouring phases; by default it only decides which components have temporal support
  (so the true motion at the breathing extremes is kept); ``voxelwise`` replaces the masks;
* spatial connectivity: per phase, keep the components touching its anchor (the prompt box
  or the reference result); everything removed is reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from ..errors import InputError

STRUCTURE = ndimage.generate_binary_structure(3, 3)  # 26-connectivity
METHODS = ("majority", "median")


@dataclass
class FilterResult:
    masks: list[np.ndarray]  # uint8 per phase
    removed: list[dict] = field(default_factory=list)  # {"phase", "step", "voxels", "centroid_ijk"}


def neighbours(k: int, count: int, half_window: int) -> list[int]:
    """Cyclic neighbours of phase k within half_window (k excluded)."""
    found = []
    for d in range(-half_window, half_window + 1):
        n = (k + d) % count
        if n != k and n not in found:
            found.append(n)
    return found


def temporal_vote(values: list[np.ndarray], window: int = 3, method: str = "majority") -> list[np.ndarray]:
    """Voxel-wise majority of binary masks, or median of probabilities, over a cyclic window."""
    if method not in METHODS:
        raise InputError(f"temporal filter must be one of {METHODS}, got {method!r}")
    if window < 1 or window % 2 == 0:
        raise InputError(f"temporal window must be an odd number of phases >= 1, got {window}")
    count, half = len(values), min(window // 2, (len(values) - 1) // 2)
    out = []
    for k in range(count):
        stack = np.stack([values[(k + d) % count] for d in range(-half, half + 1)]).astype(np.float32)
        if method == "majority":
            out.append(((stack > 0.5).sum(axis=0) * 2 > stack.shape[0]).astype(np.uint8))
        else:
            out.append((np.median(stack, axis=0) > 0.5).astype(np.uint8))
    return out


def remove_transients(masks: list[np.ndarray], removed: list[dict]) -> list[np.ndarray]:
    """Drop components that overlap no foreground in either cyclic neighbour phase."""
    out = []
    for k, mask in enumerate(masks):
        near = np.any([masks[n] > 0 for n in neighbours(k, len(masks), 1)], axis=0)
        out.append(_keep_overlapping(mask, near, k, "transient", removed))
    return out


def keep_supported(masks: list[np.ndarray], support: list[np.ndarray], removed: list[dict]) -> list[np.ndarray]:
    """Keep the components of each phase that overlap its temporal vote."""
    return [_keep_overlapping(m, s > 0, k, "temporal", removed) for k, (m, s) in enumerate(zip(masks, support))]


def keep_connected(masks: list[np.ndarray], anchors: list[np.ndarray], removed: list[dict]) -> list[np.ndarray]:
    """Keep the components of each phase that touch its anchor region (prompt box / reference)."""
    return [_keep_overlapping(m, a > 0, k, "connectivity", removed) for k, (m, a) in enumerate(zip(masks, anchors))]


def filter_phases(masks: list[np.ndarray], anchors: list[np.ndarray] | None = None, window: int = 3,
                  method: str = "majority", voxelwise: bool = False,
                  probabilities: list[np.ndarray] | None = None) -> FilterResult:
    """Transient removal, temporal vote, then connectivity to the anchors (when given)."""
    removed: list[dict] = []
    masks = remove_transients([np.asarray(m) > 0 for m in masks], removed)
    values = probabilities if method == "median" and probabilities is not None else masks
    vote = temporal_vote(values, window, method)
    if voxelwise:
        for k, (m, v) in enumerate(zip(masks, vote)):
            lost = int(np.sum((m > 0) & (v == 0)))
            if lost:
                removed.append({"phase": k, "step": "temporal-voxels", "voxels": lost, "centroid_ijk": None})
        masks = vote
    else:
        masks = keep_supported(masks, vote, removed)
    if anchors is not None:
        masks = keep_connected(masks, anchors, removed)
    return FilterResult([m.astype(np.uint8) for m in masks], removed)


def _keep_overlapping(mask: np.ndarray, region: np.ndarray, phase: int, step: str, removed: list[dict]) -> np.ndarray:
    labels, count = ndimage.label(mask > 0, structure=STRUCTURE)
    if count == 0:
        return mask > 0
    hits = np.unique(labels[region & (labels > 0)])
    keep = np.zeros(count + 1, dtype=bool)
    keep[hits] = True
    for label in np.flatnonzero(~keep[1:]) + 1:
        voxels = np.argwhere(labels == label)
        removed.append({"phase": phase, "step": step, "voxels": int(len(voxels)),
                        "centroid_ijk": voxels.mean(axis=0)[::-1].round(1).tolist()})
    return keep[labels]
