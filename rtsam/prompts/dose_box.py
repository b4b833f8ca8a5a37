"""Dose-guided 3D box prompt: the box around the voxels receiving >= threshold x Dmax.

The box is computed in physical space (LPS mm) from the corners of the thresholded
voxels, so it is exact for any voxel spacing and direction. It is then expressed as
inclusive voxel index ranges of a reference image (or of the dose grid).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
from scipy import ndimage

from ..errors import GeometryError, InputError
from ..volume import Volume

AXES = ("L", "P", "S")  # LPS axis names for the shift report
_EPS = 1e-6


@dataclass
class DoseBox:
    box_lps: np.ndarray  # 2x3: min and max corner, LPS mm
    box_ijk: np.ndarray  # 2x3 int: first and last voxel index (i, j, k), inclusive
    dmax_gy: float
    threshold_gy: float
    voxels: int  # dose voxels above threshold (in the kept components)
    grid: str = "dose"  # "reference" or "dose": the grid of box_ijk
    components: int = 1
    extra: dict = field(default_factory=dict)

    @property
    def size_mm(self) -> np.ndarray:
        return self.box_lps[1] - self.box_lps[0]

    def to_dict(self) -> dict:
        return {
            "box_lps_mm": np.round(self.box_lps, 3).tolist(),
            "box_ijk": self.box_ijk.astype(int).tolist(),
            "box_ijk_grid": self.grid,
            "dmax_gy": round(self.dmax_gy, 4),
            "threshold_gy": round(self.threshold_gy, 4),
            "voxels": int(self.voxels),
            "components": int(self.components),
            **self.extra,
        }


def check_dose(dose: Volume) -> float:
    """Dmax in Gy; InputError (naming the file) for NaN, infinite, negative-only or all-zero dose."""
    path = dose.metadata.get("path")
    values = dose.array
    if not np.all(np.isfinite(values)):
        raise InputError(f"dose contains {int(np.sum(~np.isfinite(values)))} NaN or infinite values", path)
    dmax = float(values.max()) if values.size else 0.0
    if dmax <= 0:
        raise InputError("dose is zero everywhere (no maximum to threshold)", path)
    return dmax


def dose_box(
    dose: Volume,
    threshold: float = 0.8,
    margin_mm: float = 0.0,
    component: str = "all",
    near_lps=None,
    reference: Volume | None = None,
    clip: bool = True,
    min_size_mm: float = 0.0,
) -> DoseBox:
    """Box around dose >= threshold x Dmax.

    component: "all" keeps every region above threshold; "nearest" keeps the connected
    region (26-connectivity) closest to ``near_lps``. The box grows by ``margin_mm`` on
    each side, then to at least ``min_size_mm`` per axis (about its centre). With
    ``reference`` the box is clipped to the reference extent (when ``clip``) and box_ijk
    indexes the reference; a box outside the reference is a GeometryError.
    """
    if not 0 < threshold <= 1:
        raise InputError(f"threshold must be in (0, 1], got {threshold}")
    if margin_mm < 0 or min_size_mm < 0:
        raise InputError("margin and minimum size must be >= 0 mm")
    dmax = check_dose(dose)
    mask = dose.array >= threshold * dmax
    mask, n_components = _select_components(mask, dose, component, near_lps)

    box = _voxel_set_bounds(dose, mask)
    box = box + np.array([[-margin_mm], [margin_mm]])
    box = _grow_to_min_size(box, min_size_mm)
    grid = reference if reference is not None else dose
    if clip:
        box = _clip_box(box, grid)
    ijk = box_to_ijk(box, grid)
    return DoseBox(
        box_lps=box,
        box_ijk=ijk,
        dmax_gy=dmax,
        threshold_gy=threshold * dmax,
        voxels=int(mask.sum()),
        grid="reference" if reference is not None else "dose",
        components=n_components,
    )


def _select_components(mask: np.ndarray, dose: Volume, component: str, near_lps):
    labels, count = ndimage.label(mask, structure=np.ones((3, 3, 3)))
    if component == "all":
        return mask, count
    if component != "nearest":
        raise InputError(f"component must be 'all' or 'nearest', got {component!r}")
    if near_lps is None:
        raise InputError("component='nearest' needs a point (near_lps)")
    kji = np.argwhere(mask)
    centres = dose.ijk_to_lps(kji[:, ::-1])
    nearest = int(np.argmin(np.linalg.norm(centres - np.asarray(near_lps, float), axis=1)))
    return labels == labels[tuple(kji[nearest])], 1


def _voxel_set_bounds(volume: Volume, mask: np.ndarray) -> np.ndarray:
    """Axis-aligned LPS box (2x3) enclosing the full extent (not only centres) of mask voxels.

    Each voxel is a parallelepiped; along LPS axis a its corners reach
    centre[a] +- 0.5 * sum_c |M[a, c]| with M = direction @ diag(spacing).
    """
    kji = np.argwhere(mask)
    centres = volume.ijk_to_lps(kji[:, ::-1])
    half = 0.5 * np.abs(volume.direction @ np.diag(volume.spacing)).sum(axis=1)
    return np.stack([centres.min(axis=0) - half, centres.max(axis=0) + half])


def _grow_to_min_size(box: np.ndarray, min_size_mm: float) -> np.ndarray:
    centre, size = box.mean(axis=0), box[1] - box[0]
    half = np.maximum(size, min_size_mm) / 2
    return np.stack([centre - half, centre + half])


def volume_extent_lps(volume: Volume) -> np.ndarray:
    """Axis-aligned LPS box (2x3) of the whole image, voxel edges included."""
    return _voxel_set_bounds(volume, _corner_mask(volume))


def _corner_mask(volume: Volume) -> np.ndarray:
    mask = np.zeros(volume.array.shape, dtype=bool)
    for k in (0, -1):
        for j in (0, -1):
            for i in (0, -1):
                mask[k, j, i] = True
    return mask


def _clip_box(box: np.ndarray, grid: Volume) -> np.ndarray:
    extent = volume_extent_lps(grid)
    clipped = np.stack([np.maximum(box[0], extent[0]), np.minimum(box[1], extent[1])])
    if np.any(clipped[1] <= clipped[0]):
        raise _outside_error(box, extent, grid)
    return clipped


def box_to_ijk(box: np.ndarray, grid: Volume) -> np.ndarray:
    """Inclusive index ranges (2x3, i/j/k) of the grid voxels that intersect an LPS box.

    The 8 box corners are mapped to continuous indices; voxel n spans [n - 0.5, n + 0.5].
    Indices are clipped to the grid; no overlap at all is a GeometryError.
    """
    corners = np.array([[box[a][0], box[b][1], box[c][2]] for a in (0, 1) for b in (0, 1) for c in (0, 1)])
    ijk = grid.lps_to_ijk(corners)
    lo = np.floor(ijk.min(axis=0) - 0.5 + _EPS).astype(int) + 1
    hi = np.ceil(ijk.max(axis=0) + 0.5 - _EPS).astype(int) - 1
    size = np.asarray(grid.size_ijk)
    lo, hi = np.maximum(lo, 0), np.minimum(hi, size - 1)
    if np.any(hi < lo):
        raise _outside_error(box, volume_extent_lps(grid), grid)
    return np.stack([lo, hi])


def _outside_error(box: np.ndarray, extent: np.ndarray, grid: Volume) -> GeometryError:
    return GeometryError(
        f"the dose box {np.round(box, 1).tolist()} mm does not overlap the image extent "
        f"{np.round(extent, 1).tolist()} mm",
        grid.metadata.get("path"),
    )


def box_iou(a, b) -> float:
    """Intersection over union of two axis-aligned boxes (2x3 arrays or DoseBox)."""
    a = np.asarray(a.box_lps if isinstance(a, DoseBox) else a, dtype=float)
    b = np.asarray(b.box_lps if isinstance(b, DoseBox) else b, dtype=float)
    overlap = np.clip(np.minimum(a[1], b[1]) - np.maximum(a[0], b[0]), 0, None)
    inter = float(np.prod(overlap))
    union = float(np.prod(a[1] - a[0]) + np.prod(b[1] - b[0]) - inter)
    return inter / union if union > 0 else 0.0


def shift_sensitivity(dose: Volume, shifts_mm=(1, 2, 3, 4, 5), **box_kwargs) -> list[dict]:
    """IoU between the box and the box of the dose translated by +-s mm along L, P and S.

    Models a dose-to-image registration error: the dose grid moves rigidly, the
    reference (if any) stays, so clipping and the reference voxel grid take effect.
    A shifted box that leaves the reference counts as IoU 0.
    """
    base = dose_box(dose, **box_kwargs)
    rows = []
    for axis, name in enumerate(AXES):
        for s in shifts_mm:
            for signed in (float(s), -float(s)):
                offset = np.zeros(3)
                offset[axis] = signed
                moved = replace(dose, origin=tuple(np.asarray(dose.origin) + offset))
                try:
                    iou = box_iou(base, dose_box(moved, **box_kwargs))
                except GeometryError:
                    iou = 0.0
                rows.append({"axis": name, "shift_mm": signed, "iou": round(iou, 4)})
    return rows
