"""Overlay PNGs for the demo: one axial slice, mask outlines, the box and the clicks (Pillow)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..io.files import write_atomically
from ..volume import Volume

TARGET_PX = 512  # the longer side of the picture
MIN_VIEW = 96  # voxels across the zoomed view, at least
COLOURS = {"truth": (0, 220, 0), "mask": (255, 200, 0), "box": (0, 200, 255), "positive": (0, 255, 0),
           "negative": (255, 40, 40)}


@dataclass
class Overlay:
    image: Volume
    k: int  # axial slice index
    outlines: dict[str, np.ndarray] = field(default_factory=dict)  # colour name -> 3D mask on the image grid
    box_lps: np.ndarray | None = None
    clicks: list = field(default_factory=list)  # (lps, positive)
    title: str = ""
    window: tuple[float, float] | None = None  # grey levels (low, high); default: 1st to 99th percentile


def lesion_slice(mask: np.ndarray) -> int:
    """The axial slice holding the most mask voxels."""
    return int(np.argmax(mask.reshape(mask.shape[0], -1).sum(axis=1)))


def save_overlay(overlay: Overlay, path: str | Path) -> Path:
    """Render and write the PNG (temporary name, then rename)."""
    picture = render(overlay)
    return write_atomically(path, lambda temp: picture.save(temp, format="PNG"), ".png")


def render(overlay: Overlay):
    """The slice, zoomed on the outlines and the box, with the box and the clicks on this slice drawn."""
    from PIL import Image, ImageDraw

    image, k = overlay.image, overlay.k
    box = None if overlay.box_lps is None else _box_on_slice(image, k, overlay.box_lps)
    rows, cols = _view(image.array.shape[1:], [m[k] > 0 for m in overlay.outlines.values()], box)
    scale = max(1, TARGET_PX // max(rows.stop - rows.start, cols.stop - cols.start))
    grey = _grey(image.array[k][rows, cols], overlay.window or _percentiles(image.array))
    rgb = np.repeat(np.kron(grey, np.ones((scale, scale), np.uint8))[..., None], 3, axis=2)
    for name, mask in overlay.outlines.items():
        rgb[_outline(mask[k][rows, cols] > 0, scale)] = COLOURS[name]
    picture = Image.fromarray(rgb, "RGB")
    draw = ImageDraw.Draw(picture)

    def pixel(i: float, j: float) -> tuple[float, float]:
        return (i - cols.start + 0.5) * scale, (j - rows.start + 0.5) * scale

    if box is not None:
        draw.rectangle([*pixel(*box[0]), *pixel(*box[1])], outline=COLOURS["box"], width=2)
    for lps, positive in overlay.clicks:
        i, j, click_k = image.lps_to_ijk(np.asarray(lps, float))
        if round(click_k) == k:
            _draw_click(draw, *pixel(i, j), positive)
    if overlay.title:
        draw.text((6, 6), overlay.title, fill=(255, 255, 255))
    return picture


def _view(shape: tuple[int, int], masks: list[np.ndarray], box: np.ndarray | None) -> tuple[slice, slice]:
    """Rows and columns around the outlined voxels and the box: three times their extent, at least
    ``MIN_VIEW`` voxels, within the image."""
    points = [np.argwhere(m)[:, ::-1] for m in masks if m.any()] + ([box] if box is not None else [])
    if not points:
        return slice(0, shape[0]), slice(0, shape[1])
    points = np.concatenate(points)
    centre = (points.min(axis=0) + points.max(axis=0)) / 2
    half = np.maximum(1.5 * (points.max(axis=0) - points.min(axis=0)), MIN_VIEW / 2)
    lo = np.clip(np.floor(centre - half), 0, None).astype(int)
    hi = np.minimum(np.ceil(centre + half).astype(int) + 1, shape[::-1])
    return slice(lo[1], hi[1]), slice(lo[0], hi[0])


def _percentiles(array: np.ndarray) -> tuple[float, float]:
    low, high = np.percentile(array, [1, 99])
    return float(low), float(high)


def _grey(plane: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    low, high = window
    return (np.clip((plane.astype(float) - low) / max(high - low, 1e-6), 0, 1) * 255).astype(np.uint8)


def _outline(mask: np.ndarray, scale: int) -> np.ndarray:
    """Pixels on the edge of the upscaled mask (a line two pixels wide)."""
    from scipy import ndimage

    big = np.kron(mask, np.ones((scale, scale), bool)) if scale > 1 else mask
    return big & ~ndimage.binary_erosion(big, iterations=2, border_value=0)


def _box_on_slice(image: Volume, k: int, box_lps: np.ndarray) -> np.ndarray | None:
    """The box's in-plane extent as ((i0, j0), (i1, j1)) voxel coordinates, when slice k lies inside it."""
    corners = np.array([[a[0], b[1], c[2]] for a in box_lps for b in box_lps for c in box_lps])
    ijk = image.lps_to_ijk(corners)
    if not ijk[:, 2].min() - 0.5 <= k <= ijk[:, 2].max() + 0.5:
        return None
    return np.array([ijk[:, :2].min(axis=0), ijk[:, :2].max(axis=0)])


def _draw_click(draw, x: float, y: float, positive: bool, radius: float = 7) -> None:
    colour = COLOURS["positive" if positive else "negative"]
    draw.ellipse([x - radius, y - radius, x + radius, y + radius], outline=colour, width=2)
    draw.line([x - radius, y, x + radius, y], fill=colour, width=2)
    if positive:
        draw.line([x, y - radius, x, y + radius], fill=colour, width=2)
