"""Segmentation metrics: overlap, surface distances in mm, volumes in mL.

Masks are voxels > 0 of two volumes on the same grid. Surface distances use the
surface voxels (mask minus its 6-connected erosion, image border counted as outside)
and Euclidean distance transforms with ``sampling = spacing``; a rotation (orthonormal
direction) does not change distances, so any direction is handled.

Empty masks (defined values, never an error):
- both empty: dice = iou = 1, hd95 = assd = 0 mm, sensitivity = precision = 1;
- one empty: dice = iou = 0, hd95 = assd = inf (``--json`` writes the string "inf");
  sensitivity is undefined (NaN, JSON null) when the truth is empty, precision when the
  prediction is empty, 0 otherwise.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .errors import GeometryError
from .volume import Volume


def _masks(pred: Volume, truth: Volume) -> tuple[np.ndarray, np.ndarray]:
    if not pred.same_grid(truth):
        raise GeometryError(
            f"prediction and truth are on different grids (shape {pred.size_ijk} vs {truth.size_ijk}, "
            f"spacing {np.round(pred.spacing, 4).tolist()} vs {np.round(truth.spacing, 4).tolist()}, "
            f"origin {np.round(pred.origin, 3).tolist()} vs {np.round(truth.origin, 3).tolist()}); "
            "resample one onto the other first",
            pred.metadata.get("path"),
        )
    return pred.array > 0, truth.array > 0


def _ratio(num: float, den: float, both_empty: bool) -> float:
    if den > 0:
        return num / den
    return 1.0 if both_empty else float("nan")


def dice(pred: Volume, truth: Volume) -> float:
    p, t = _masks(pred, truth)
    total = p.sum() + t.sum()
    return float(2 * np.sum(p & t) / total) if total else 1.0


def iou(pred: Volume, truth: Volume) -> float:
    p, t = _masks(pred, truth)
    union = np.sum(p | t)
    return float(np.sum(p & t) / union) if union else 1.0


def sensitivity(pred: Volume, truth: Volume) -> float:
    p, t = _masks(pred, truth)
    return float(_ratio(np.sum(p & t), t.sum(), not p.any()))


def precision(pred: Volume, truth: Volume) -> float:
    p, t = _masks(pred, truth)
    return float(_ratio(np.sum(p & t), p.sum(), not t.any()))


def volume_ml(mask: Volume) -> float:
    return float(np.sum(mask.array > 0)) * mask.voxel_volume_ml


def surface(mask: np.ndarray) -> np.ndarray:
    """Surface voxels: in the mask with a face neighbour outside it (or on the image border)."""
    return mask & ~ndimage.binary_erosion(mask, border_value=0)


def surface_distances(pred: Volume, truth: Volume) -> tuple[np.ndarray, np.ndarray]:
    """Distances (mm) from each pred surface voxel to the truth surface, and the reverse.

    Both arrays are empty when both masks are empty; one mask empty gives inf distances.
    """
    p, t = _masks(pred, truth)
    if not p.any() or not t.any():
        inf = np.full(1 if (p.any() or t.any()) else 0, np.inf)
        return inf, inf
    sp, st = surface(p), surface(t)
    crop = _bbox_slices(sp | st)
    sp, st = sp[crop], st[crop]
    sampling = pred.spacing[::-1]  # array axes are (k, j, i)
    to_truth = ndimage.distance_transform_edt(~st, sampling=sampling)[sp]
    to_pred = ndimage.distance_transform_edt(~sp, sampling=sampling)[st]
    return to_truth, to_pred


def _bbox_slices(mask: np.ndarray) -> tuple[slice, ...]:
    idx = np.argwhere(mask)
    lo, hi = idx.min(axis=0), idx.max(axis=0) + 1
    return tuple(slice(a, b) for a, b in zip(lo, hi))


def _hd95(a: np.ndarray, b: np.ndarray) -> float:
    if a.size == 0 or np.isinf(a).any():  # both empty -> 0, one empty -> inf
        return float(np.inf) if a.size else 0.0
    return float(max(np.percentile(a, 95), np.percentile(b, 95)))


def _assd(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.concatenate([a, b]).mean()) if a.size else 0.0


def hd95_mm(pred: Volume, truth: Volume) -> float:
    """Symmetric 95th-percentile Hausdorff distance: max of the two directed 95th percentiles."""
    return _hd95(*surface_distances(pred, truth))


def assd_mm(pred: Volume, truth: Volume) -> float:
    """Average symmetric surface distance: mean over both directed distance sets."""
    return _assd(*surface_distances(pred, truth))


def evaluate(pred: Volume, truth: Volume) -> dict:
    """All metrics at once (surface distances computed once)."""
    a, b = surface_distances(pred, truth)
    vp, vt = volume_ml(pred), volume_ml(truth)
    return {
        "dice": dice(pred, truth),
        "iou": iou(pred, truth),
        "hd95_mm": _hd95(a, b),
        "assd_mm": _assd(a, b),
        "volume_pred_ml": vp,
        "volume_truth_ml": vt,
        "volume_error_ml": vp - vt,  # signed: prediction minus truth
        "sensitivity": sensitivity(pred, truth),
        "precision": precision(pred, truth),
    }
