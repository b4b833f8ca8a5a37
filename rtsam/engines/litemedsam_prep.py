"""Pre- and post-processing for the slice-wise LiteMedSAM engine.

Follows LiteMedSAM's own inference: an intensity window per modality (CT: a soft-tissue or a
lung window, MR: 0.5-99.5 percentiles of the non-zero voxels) scaled to [0, 1], the slice resized
so its longest side is 256 (aspect kept) and zero-padded bottom/right to 256 x 256
(letterbox), per-slice min-max normalisation, 3 identical channels. Boxes and points are in
the 256-grid's pixel coordinates (x = column i, y = row j).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from ..volume import Volume

SIZE = 256
CT_WINDOWS = {"soft-tissue": (-160.0, 240.0), "lung": (-1350.0, 150.0)}  # W400/L40 and W1500/L-600 HU


def detect_modality(image: Volume) -> str:
    """``CT`` or ``MR``: the metadata when it says so, else CT when air-like values (< -500) exist."""
    modality = str(image.metadata.get("modality") or "").upper()
    if modality in ("CT", "MR"):
        return modality
    return "CT" if float(image.array.min()) < -500 else "MR"


def intensity_window(image: Volume, modality: str, ct_window: str = "soft-tissue") -> tuple[float, float]:
    """The (low, high) intensities mapped to 0 and 1 (``ct_window``: a CT_WINDOWS name)."""
    if modality == "CT":
        return CT_WINDOWS[ct_window]
    values = image.array[image.array > 0] if np.any(image.array > 0) else image.array
    low, high = np.percentile(values, [0.5, 99.5])
    return float(low), float(max(high, low + 1e-6))


@dataclass(frozen=True)
class Letterbox:
    """How a slice of ``shape`` (rows, cols), or its ``region`` (first row, first col, rows, cols), maps onto
    the padded 256 grid; the slice outside the region is not seen and gets probability 0."""

    shape: tuple[int, int]
    region: tuple[int, int, int, int] | None = None

    @property
    def seen(self) -> tuple[int, int, int, int]:
        """(first row, first col, rows, cols) of what the model sees."""
        return self.region or (0, 0, *self.shape)

    @property
    def scale(self) -> float:
        return SIZE / max(self.seen[2:])

    @property
    def resized(self) -> tuple[int, int]:
        return tuple(max(1, int(round(n * self.scale))) for n in self.seen[2:])

    def cropped(self, slice2d: np.ndarray) -> np.ndarray:
        r0, c0, rows, cols = self.seen
        return slice2d[r0:r0 + rows, c0:c0 + cols]

    def image_tensor(self, slice2d: np.ndarray, window: tuple[float, float]) -> torch.Tensor:
        """(1, 3, 256, 256) float tensor of one windowed, letterboxed slice; a region keeps the whole slice's
        min-max normalisation (its own would stretch its contrast: a tumour in lung as bright as bone)."""
        low, high = (np.float32(v) for v in window)
        windowed = torch.from_numpy(np.clip((slice2d.astype(np.float32) - low) / (high - low), 0.0, 1.0))
        whole = F.interpolate(windowed[None, None], size=Letterbox(self.shape).resized, mode="bilinear",
                              align_corners=False, antialias=True)
        x = whole if self.region is None else F.interpolate(self.cropped(windowed)[None, None], size=self.resized,
                                                            mode="bilinear", align_corners=False, antialias=True)
        x = ((x - whole.min()) / torch.clamp(whole.max() - whole.min(), min=1e-8)).clamp(0.0, 1.0)
        h, w = self.resized
        x = F.pad(x, (0, SIZE - w, 0, SIZE - h))
        return x.expand(1, 3, SIZE, SIZE).contiguous()

    def to_grid(self, xy: np.ndarray) -> np.ndarray:
        """Pixel (x=i, y=j) coordinates of the slice -> 256-grid coordinates."""
        r0, c0 = self.seen[:2]
        return (np.asarray(xy, dtype=float) - [c0, r0]) * self.scale

    def cell_shares(self, mask: np.ndarray, cells: tuple[int, int]) -> np.ndarray:
        """The share of each cell of a ``cells`` grid over the 256 grid (an image embedding's) that the
        slice's ``mask`` (rows x cols) covers."""
        h, w = self.resized
        x = F.interpolate(torch.from_numpy(self.cropped(mask).astype(np.float32))[None, None], size=(h, w),
                          mode="area")
        x = F.pad(x, (0, SIZE - w, 0, SIZE - h))
        return F.adaptive_avg_pool2d(x, cells)[0, 0].numpy()

    def probability(self, low_res_logits: torch.Tensor) -> np.ndarray:
        """Low-res (1, 1, 256, 256) logits -> probabilities on the slice's own rows x cols."""
        h, w = self.resized
        r0, c0, rows, cols = self.seen
        logits = F.interpolate(low_res_logits[..., :h, :w], size=(rows, cols), mode="bilinear", align_corners=False)
        out = np.zeros(self.shape, dtype=np.float32)
        out[r0:r0 + rows, c0:c0 + cols] = torch.sigmoid(logits)[0, 0].cpu().numpy()
        return out


@dataclass(frozen=True)
class ZoomRule:
    """Zoom in on boxes whose longer side spans under ``below_px`` pixels of the model's 256 grid when it sees
    the whole slice: it then sees only a square region around the box (``zoom_region``), scaled up to its
    grid, so a small lesion gets more of its pixels. With ``by_quality`` a new box is predicted in both views
    and the zoomed result kept only when its quality is higher; with ``ct_only`` other modalities never zoom."""

    below_px: float
    factor: float = 5.0
    least_mm: float = 40.0
    by_quality: bool = False
    ct_only: bool = False

    def letterbox(self, shape: tuple[int, int], user_box: np.ndarray, box: np.ndarray,
                  spacing: tuple[float, float]) -> Letterbox:
        """The letterbox of a prompt whose user box is ``user_box`` and whose clicks grow it to ``box`` (both
        x0, y0, x1, y1 pixels): the region around the user box (the same for every click inside it), or
        around ``box`` when that reaches outside."""
        whole = Letterbox(shape)
        if grid_side(user_box, whole) >= self.below_px:
            return whole
        region = zoom_region(shape, user_box, spacing, self.factor, self.least_mm)
        if region is not None and not _holds(region, box):
            region = zoom_region(shape, box, spacing, self.factor, self.least_mm)
        return Letterbox(shape, region)


def grid_side(box: np.ndarray, letterbox: Letterbox) -> float:
    """The longer side of ``box`` (x0, y0, x1, y1 slice pixels) in ``letterbox``'s 256-grid pixels."""
    return float(max(box[2] - box[0], box[3] - box[1]) * letterbox.scale)


def _holds(region: tuple[int, int, int, int], box: np.ndarray) -> bool:
    r0, c0, rows, cols = region
    return c0 <= box[0] and r0 <= box[1] and box[2] <= c0 + cols - 1 and box[3] <= r0 + rows - 1


def zoom_region(shape: tuple[int, int], box: np.ndarray, spacing: tuple[float, float], factor: float,
                least_mm: float) -> tuple[int, int, int, int] | None:
    """The square (in mm) region of a slice of ``shape`` centred on ``box`` (x0, y0, x1, y1 pixels), of side
    ``factor`` x the box's longer side and at least ``least_mm``, shifted inside the slice; None when that
    is no smaller than the slice."""
    side_mm = max(factor * max((box[2] - box[0]) * spacing[0], (box[3] - box[1]) * spacing[1]), least_mm)
    size = [min(n, int(math.ceil(side_mm / s))) for n, s in zip(shape, (spacing[1], spacing[0]))]
    if tuple(size) == tuple(shape):
        return None
    centre = ((box[1] + box[3]) / 2, (box[0] + box[2]) / 2)
    start = [int(np.clip(round(c - (n - 1) / 2), 0, total - n)) for c, n, total in zip(centre, size, shape)]
    return (start[0], start[1], size[0], size[1])


def box_voxel_extent(image: Volume, box_lps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Continuous (i, j, k) min and max of a LPS box (all 8 corners, any direction matrix)."""
    corners = np.array([[box_lps[a][0], box_lps[b][1], box_lps[c][2]] for a in (0, 1) for b in (0, 1) for c in (0, 1)])
    ijk = image.lps_to_ijk(corners)
    return ijk.min(axis=0), ijk.max(axis=0)


class SliceExtent(NamedTuple):
    k0: int  # first slice
    k1: int  # last slice (inclusive)
    box: np.ndarray  # in-plane pixel box (x0, y0, x1, y1) within the slice
    centre: float  # continuous k of the box centre


def slice_extent(image: Volume, lo: np.ndarray, hi: np.ndarray) -> SliceExtent:
    """The slices and in-plane box of a continuous (i, j, k) extent, clipped to the image; a box
    thinner than a slice gets its nearest slice."""
    n_k, n_j, n_i = image.array.shape
    lo = np.maximum(lo, [-0.5, -0.5, 0])
    hi = np.minimum(hi, [n_i - 0.5, n_j - 0.5, n_k - 1])
    k0, k1 = math.ceil(lo[2] - 1e-6), math.floor(hi[2] + 1e-6)
    centre = (lo[2] + hi[2]) / 2
    if k1 < k0:
        k0 = k1 = seed_slice(centre, 0, n_k - 1)
    return SliceExtent(k0, k1, np.array([lo[0], lo[1], hi[0], hi[1]]), float(centre))


def seed_slice(centre: float, k0: int, k1: int) -> int:
    """The slice nearest a box's continuous centre ``centre``, within k0..k1. A centre half way between two
    slices goes to the even one (Python's round) also when float noise moved it off the half: a DICOM slice
    spacing of 2.9999999999998486 mm put a 26-slice lesion's seed one slice lower than 3.0 mm did."""
    return int(np.clip(round(round(2 * centre, 6) / 2), k0, k1))


def outside_box_cleared(probability: np.ndarray, box: np.ndarray) -> np.ndarray:
    """``probability`` (rows y, columns x) set to 0 outside ``box`` (x0, y0, x1, y1, pixel centres)."""
    rows, cols = np.arange(probability.shape[0])[:, None], np.arange(probability.shape[1])[None, :]
    inside = (cols >= box[0]) & (cols <= box[2]) & (rows >= box[1]) & (rows <= box[3])
    return np.where(inside, probability, 0.0).astype(probability.dtype)


def mask_box(mask2d: np.ndarray, pad: float = 2.0) -> np.ndarray | None:
    """(x0, y0, x1, y1) pixel box of a 2D mask, grown by ``pad`` pixels; None when empty."""
    rows = np.flatnonzero(mask2d.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask2d.any(axis=0))
    return np.array([cols[0] - pad, rows[0] - pad, cols[-1] + pad, rows[-1] + pad], dtype=float)


def clip_box(box: np.ndarray, limit: np.ndarray) -> np.ndarray:
    """``box`` limited to ``limit`` (both x0, y0, x1, y1)."""
    out = np.concatenate([np.maximum(box[:2], limit[:2]), np.minimum(box[2:], limit[2:])])
    if np.any(out[2:] <= out[:2]):
        return limit.copy()
    return out


def central_blobs_erased(probability: np.ndarray, points, prior_mask: np.ndarray | None, central: float | None,
                         spacing: tuple[float, float]) -> np.ndarray:
    """``probability`` without each blob (2D component) of ``prior_mask``, the slice's previous result, that
    a negative point hits near its middle (depth there >= ``central`` x the blob's deepest) and no positive
    point touches: a click in the middle of a blob means "not this", one at its side "not here"."""
    if central is None or prior_mask is None or not any(not positive for *_, positive in points):
        return probability
    blobs, _ = ndimage.label(prior_mask)
    kept = [blobs[click_pixel(blobs.shape, x, y)] for x, y, positive in points if positive]
    out = probability
    for x, y, positive in points:
        pixel = click_pixel(blobs.shape, x, y)
        if positive or not blobs[pixel] or blobs[pixel] in kept:
            continue
        blob = blobs == blobs[pixel]
        depth = ndimage.distance_transform_edt(blob, sampling=(spacing[1], spacing[0]))
        if depth[pixel] >= central * depth.max():
            out = np.where(blob, 0.0, out).astype(probability.dtype)
    return out


def click_pixel(shape: tuple[int, int], x: float, y: float) -> tuple[int, int]:
    """(row, column) of the pixel nearest to (x, y), inside a slice of ``shape``."""
    return min(max(round(y), 0), shape[0] - 1), min(max(round(x), 0), shape[1] - 1)


def distance_to(mask: np.ndarray | None, x: float, y: float, spacing: tuple[float, float] = (1.0, 1.0)) -> float:
    """Distance (pixels, or mm with ``spacing`` per column and row) from (x, y) to the nearest
    pixel of ``mask``; 0 without a mask or inside it."""
    if mask is None or not mask.any():
        return 0.0
    rows, cols = np.nonzero(mask)
    return float(np.sqrt(np.min(((cols - x) * spacing[0]) ** 2 + ((rows - y) * spacing[1]) ** 2)))


def unhonoured_clicks_painted(probability: np.ndarray, points, spacing: tuple[float, float],
                              empty_radius_mm: float = 2.5) -> np.ndarray:
    """``probability`` (rows y, columns x) with every positive click (x, y, True) that lies
    outside the mask painted in: a disc around the click reaching the mask (one pixel into it),
    or of ``empty_radius_mm`` on an empty slice, kept clear of the negative clicks."""
    painted = probability.copy()
    rows, cols = np.ogrid[:probability.shape[0], :probability.shape[1]]
    negatives = [(x, y) for x, y, positive in points if not positive]
    for x, y, positive in points:
        mask = painted > 0.5
        r, c = click_pixel(mask.shape, x, y)
        if not positive or mask[r, c]:
            continue
        radius = distance_to(mask, x, y, spacing) + max(spacing) if mask.any() else empty_radius_mm
        for nx, ny in negatives:  # a negative click stays outside the disc
            radius = min(radius, np.hypot((nx - x) * spacing[0], (ny - y) * spacing[1]) - max(spacing))
        disc = ((cols - x) * spacing[0]) ** 2 + ((rows - y) * spacing[1]) ** 2 <= max(radius, 0.0) ** 2
        disc[r, c] = True
        painted[disc] = 1.0
    return painted
