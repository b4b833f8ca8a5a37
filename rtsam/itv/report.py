"""What the ITV report holds: per-phase volumes, the tumour trajectory, and the MIP-based ITV."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..metrics import dice
from ..volume import Volume



def phase_table(masks: list[Volume], labels: list[str], reference: int) -> list[dict]:
    """Per phase: volume (ml), centroid (LPS mm) and its offset from the reference phase's centroid."""
    centroids = [_centroid(m) for m in masks]
    origin = centroids[reference]
    rows = []
    for k, (mask, c) in enumerate(zip(masks, centroids)):
        offset = None if c is None or origin is None else np.round(c - origin, 2).tolist()
        rows.append({
            "phase": k, "label": labels[k], "volume_ml": round(float(mask.array.astype(bool).sum()) * mask.voxel_volume_ml, 3),
            "centroid_lps_mm": None if c is None else np.round(c, 2).tolist(), "offset_mm": offset,
        })
    return rows


def motion_amplitude(rows: list[dict]) -> dict:
    """Peak-to-peak centroid motion (mm) per LPS axis, plus the 3D range from the reference."""
    offsets = np.array([r["offset_mm"] for r in rows if r["offset_mm"] is not None])
    if len(offsets) == 0:
        return {"x_mm": None, "y_mm": None, "z_mm": None, "max_3d_mm": None}
    span = offsets.max(axis=0) - offsets.min(axis=0)
    return {"x_mm": round(float(span[0]), 2), "y_mm": round(float(span[1]), 2), "z_mm": round(float(span[2]), 2),
            "max_3d_mm": round(float(np.linalg.norm(offsets, axis=1).max()), 2)}


def mip_itv(phases: list[Volume], reference_mask: Volume, itv: Volume, margin_voxels: int = 3) -> Volume:
    """ITV from the maximum intensity projection over phases, thresholded inside the ITV's box.

    The threshold lies halfway between the lesion (median in the reference mask) and its
    surroundings (median of the box outside the ITV); the part touching our ITV is kept.
    """
    box = _box(itv.array > 0, margin_voxels)
    mip = np.max([p.array[box] for p in phases], axis=0).astype(np.float32)
    lesion = reference_mask.array[box] > 0
    background = ~(itv.array[box] > 0)
    out = np.zeros(itv.array.shape, dtype=np.uint8)
    if lesion.any() and background.any():
        threshold = 0.5 * (np.median(mip[lesion]) + np.median(mip[background]))
        bright = mip > threshold
        labels, _ = ndimage.label(bright, structure=np.ones((3, 3, 3)))
        keep = np.unique(labels[(itv.array[box] > 0) & bright])
        out[box] = np.isin(labels, keep[keep > 0])
    return itv.with_array(out, path=None)


def mip_comparison(phases: list[Volume], reference_mask: Volume, itv: Volume) -> tuple[Volume, dict]:
    mip = mip_itv(phases, reference_mask, itv)
    return mip, {"volume_ml": round(float(mip.array.sum()) * mip.voxel_volume_ml, 3), "dice_vs_itv": round(dice(mip, itv), 4)}


def _centroid(mask: Volume) -> np.ndarray | None:
    voxels = np.argwhere(mask.array > 0)
    return None if len(voxels) == 0 else mask.ijk_to_lps(voxels.mean(axis=0)[::-1])


def _box(mask: np.ndarray, margin: int) -> tuple[slice, ...]:
    voxels = np.argwhere(mask)
    if len(voxels) == 0:
        return tuple(slice(0, 0) for _ in mask.shape)
    lo = np.maximum(voxels.min(axis=0) - margin, 0)
    hi = np.minimum(voxels.max(axis=0) + margin + 1, mask.shape)
    return tuple(slice(a, b) for a, b in zip(lo, hi))
