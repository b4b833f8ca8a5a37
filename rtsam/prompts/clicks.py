"""Simulated refinement clicks from a prediction and the truth (interactive protocol, training).

Error regions are the false negatives (truth, not predicted) and false positives (predicted,
not truth), split into face-connected 3D components. Clicks go to the largest components,
one click per component, largest first: positive in a false-negative component, negative in
a false-positive one. ``center`` mode clicks the interior-most voxel (largest Euclidean
distance to the component's border, in mm when ``spacing`` is given, the image border counting
as border); ``random`` mode draws a voxel of the component's inner half (distance at least
half the maximum) with ``rng``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy import ndimage

from ..engines.base import Click
from ..errors import InputError
from ..volume import Volume


@dataclass(frozen=True)
class SimClick:
    index_kji: tuple[int, int, int]
    positive: bool

    def to_click(self, image: Volume) -> Click:
        """The click in LPS mm on ``image``'s grid."""
        k, j, i = self.index_kji
        return Click(tuple(image.ijk_to_lps([i, j, k])), self.positive)


def error_regions(pred: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false_negative, false_positive) boolean arrays."""
    pred, truth = np.asarray(pred) > 0, np.asarray(truth) > 0
    if pred.shape != truth.shape:
        raise InputError(f"prediction shape {pred.shape} does not match truth shape {truth.shape}")
    return truth & ~pred, pred & ~truth


def next_clicks(pred: np.ndarray, truth: np.ndarray, n: int = 1, spacing=None, mode: str = "center",
                rng=None) -> list[SimClick]:
    """Up to ``n`` clicks on the ``n`` largest error components (fewer when fewer errors exist).

    ``spacing`` is (sx, sy, sz) in mm along (i, j, k); ``rng`` a seed or numpy Generator.
    """
    if mode not in ("center", "random"):
        raise InputError(f"click mode must be 'center' or 'random', got '{mode}'")
    rng = np.random.default_rng(rng)
    sampling = None if spacing is None else tuple(float(s) for s in spacing)[::-1]
    components = []
    for region, positive in zip(error_regions(pred, truth), (True, False)):
        labels, count = ndimage.label(region)
        sizes = np.bincount(labels.ravel())[1:]
        components += [(int(sizes[c]), positive, labels, c + 1) for c in range(count)]
    components.sort(key=lambda c: -c[0])
    return [_click_in(labels == label, positive, sampling, mode, rng)
            for _, positive, labels, label in components[:n]]


def _click_in(component: np.ndarray, positive: bool, sampling, mode: str, rng) -> SimClick:
    # Crop to the component (plus one voxel of border) to keep the distance transform cheap.
    slices = ndimage.find_objects(component.astype(np.uint8))[0]
    lo = [max(s.start - 1, 0) for s in slices]
    crop = component[tuple(slice(a, s.stop + 1) for a, s in zip(lo, slices))]
    distance = ndimage.distance_transform_edt(np.pad(crop, 1), sampling=sampling)[1:-1, 1:-1, 1:-1]
    if mode == "center":
        flat = int(np.argmax(distance))
    else:
        candidates = np.flatnonzero(distance >= 0.5 * distance.max())
        flat = int(rng.choice(candidates))
    local = np.unravel_index(flat, crop.shape)
    return SimClick(tuple(int(a + b) for a, b in zip(lo, local)), positive)


def simulate_clicks(predict: Callable[[list[SimClick]], np.ndarray], truth: np.ndarray, iterations: int = 3,
                    clicks: int = 4, spacing=None, mode: str = "center", rng=None) -> list[list[SimClick]]:
    """Progressive simulation (paper: 3 iterations x 4 clicks).

    Each iteration calls ``predict(all_clicks_so_far)`` (a binary or probability array, > 0.5
    is foreground) and adds ``clicks`` new clicks from its errors. Returns the clicks added
    per iteration; stops early when the prediction has no error left.
    """
    rng = np.random.default_rng(rng)
    rounds: list[list[SimClick]] = []
    for _ in range(iterations):
        pred = np.asarray(predict([c for r in rounds for c in r])) > 0.5
        new = next_clicks(pred, truth, n=clicks, spacing=spacing, mode=mode, rng=rng)
        if not new:
            break
        rounds.append(new)
    return rounds
