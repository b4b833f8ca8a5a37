"""A tried and rejected presence cue for LiteMedSAM (issue 17): where the lesion ends in z, seen on
coronal and sagittal reformats (benchmark-only: it did not beat loco_tune.py's evidence rules
by leave-one-case-out, see views_loco.py).

On its own axial slice a margin slice is hard to judge; on a coronal or sagittal plane through
the lesion its top and bottom are ordinary image edges. Through the seed (middle) slice's mask
centre, the planes are resampled to square pixels (linear in z), windowed like the axial slices and
segmented by the same LiteMedSAM with a box = the user box's (or the seed mask's) extent across the
plane and the box's slices in z (optionally tightened like a box-only slice). An axial slice is
present where a plane's mask is at least ``min_width_mm`` wide (mean over the rows in the middle
``core`` of that slice's thickness, at least the nearest row); walking out from the seed, the first
absent slice and every slice beyond it would be left empty.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rtsam.engines.litemedsam import LiteMedSAMContext
from rtsam.volume import Volume

AXES = {"coronal": 1, "sagittal": 2}  # the array axis a plane is fixed on


@dataclass(frozen=True)
class ViewPresence:
    """Presence of the object per axial slice from reformats: ``planes`` per orientation (1: through
    the seed mask's centre; 3: also at +-1/4 of its width), combined with ``join`` ("any": present
    where one plane sees it, "all": where every plane does). A plane's box spans the user box
    across the plane (``box="user"``) or the seed mask's extent (``"seed"``); ``tighten``: re-decoded
    with its own mask's box like a box-only slice."""

    min_width_mm: float = 2.0
    core: float = 0.5
    planes: int = 1
    join: str = "any"
    tighten: bool = True
    box: str = "user"


@dataclass(frozen=True)
class Reformat:
    """One plane: ``image`` (rows = z, resampled to the columns' spacing), each row's continuous slice
    index ``k_of_row``, the plane's ``axis`` and ``index`` in the volume, its square pixel's size."""

    image: np.ndarray
    k_of_row: np.ndarray
    axis: str
    index: int
    pixel_mm: float


def reformat(volume: Volume, axis: str, index: int) -> Reformat:
    """The plane of ``volume`` fixed at ``index`` on ``axis`` (coronal: a row j, sagittal: a column i),
    z resampled linearly so its pixels are square."""
    plane = np.take(volume.array, index, axis=AXES[axis]).astype(np.float32)  # (k, horizontal)
    pixel = float(volume.spacing[0] if axis == "coronal" else volume.spacing[1])
    n_k = plane.shape[0]
    rows = int(np.floor((n_k - 1) * volume.spacing[2] / pixel)) + 1
    k = np.arange(rows) * pixel / volume.spacing[2]
    below = np.minimum(np.floor(k).astype(int), n_k - 1)
    above = np.minimum(below + 1, n_k - 1)
    weight = (k - below)[:, None].astype(np.float32)
    image = plane[below] * (1 - weight) + plane[above] * weight
    return Reformat(image, k, axis, int(index), pixel)


def plane_indices(seed_mask: np.ndarray, planes: int) -> dict[str, list[int]]:
    """{axis: indices}: the seed mask's centre row (coronal) and column (sagittal), and with 3 planes
    also those at +-1/4 of the mask's extent across them."""
    rows, cols = np.nonzero(seed_mask)
    out = {}
    for axis, values, size in (("coronal", rows, seed_mask.shape[0]), ("sagittal", cols, seed_mask.shape[1])):
        centre, extent = float(values.mean()), float(values.max() - values.min())
        offsets = (0.0,) if planes == 1 else (0.0, -0.25, 0.25)
        out[axis] = sorted({int(np.clip(round(centre + f * extent), 0, size - 1)) for f in offsets})
    return out


def view_box(view: Reformat, box: np.ndarray, k_range: tuple[int, int]) -> np.ndarray:
    """The plane's box (x0, y0, x1, y1): the user box across the plane, the slabs of its slices in z."""
    x0, x1 = (box[0], box[2]) if view.axis == "coronal" else (box[1], box[3])
    step = view.k_of_row[1] - view.k_of_row[0] if len(view.k_of_row) > 1 else 1.0
    y0, y1 = (k_range[0] - 0.5) / step, (k_range[1] + 0.5) / step
    return np.array([x0, max(y0, 0.0), x1, min(y1, len(view.k_of_row) - 1.0)])


def slice_widths(view: Reformat, mask: np.ndarray, ks, core: float) -> np.ndarray:
    """Mean width (mm) of ``mask`` (on ``view``) over the rows in the middle ``core`` of each slice of ``ks``."""
    row_mm = mask.sum(axis=1) * view.pixel_mm
    out = []
    for k in ks:
        distance = np.abs(view.k_of_row - k)
        rows = distance <= max(core / 2, distance.min())  # at least the nearest row
        out.append(float(row_mm[rows].mean()))
    return np.array(out)


def present_slices(widths: dict[str, np.ndarray], rule: ViewPresence) -> np.ndarray:
    """Per slice, whether the object is present: the planes' widths (``widths``) against the rule."""
    seen = np.array([w >= rule.min_width_mm for w in widths.values()])
    return seen.any(axis=0) if rule.join == "any" else seen.all(axis=0)


def ended_slices(present: np.ndarray, ks, seed: int) -> set[int]:
    """Walking out from ``seed`` on each side, the first slice judged absent and all beyond it."""
    ks = list(ks)
    ended = set()
    for side in (1, -1):
        side_ks = sorted((k for k in ks if (k - seed) * side > 0), key=lambda k: abs(k - seed))
        gone = False
        for k in side_ks:
            gone = gone or not present[ks.index(k)]
            if gone:
                ended.add(k)
    return ended


def view_mask(context: LiteMedSAMContext, view: Reformat, box: np.ndarray, tighten: bool) -> np.ndarray:
    """LiteMedSAM's box-only mask on ``view``, windowed like ``context``'s axial slices: the view
    becomes a two-slice volume (its own letterbox and embedding cache) decoded by the engine's code."""
    volume = Volume(np.stack([view.image, view.image]), (view.pixel_mm, view.pixel_mm, 1.0))
    sub = LiteMedSAMContext(context.engine, volume)
    sub.window_name, sub.window = context.window_name, context.window
    embedding = sub.embedding(0, {})
    logits, iou = sub.decode(embedding, box, [], None)
    if tighten:
        logits, iou, _ = sub.tightened(embedding, logits, iou, box)
    return sub.letterbox.probability(logits) > 0.5
