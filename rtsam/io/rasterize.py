"""Planar contours (LPS mm) -> binary masks on a voxel grid.

Each contour plane is filled with the even-odd rule (so holes and several contours per
plane work), a voxel belongs to the structure when its centre lies inside. A reference
slice takes the contour plane nearest to it, if that plane is at most half the contour
plane spacing away. Grids whose slices are not parallel to the contour planes are filled
on an intermediate grid aligned with the planes, then resampled (nearest) onto the grid.
"""

from __future__ import annotations

import numpy as np

from ..volume import Volume

PLANE_DECIMALS = 2  # contour plane positions are grouped to 0.01 mm
PARALLEL_TOLERANCE = 1e-4


def fill_polygons(polygons: list[np.ndarray], rows: int, cols: int) -> np.ndarray:
    """Even-odd fill of polygons given in continuous (i, j) voxel indices; voxel centres are integers."""
    edges = [np.column_stack([p, np.roll(p, -1, axis=0)]) for p in polygons if len(p) >= 3]
    if not edges:
        return np.zeros((rows, cols), dtype=bool)
    x0, y0, x1, y1 = np.concatenate(edges).T
    # A row j crosses an edge when min(y) <= j < max(y) (half-open: vertices count once).
    start = np.clip(np.ceil(np.minimum(y0, y1)), 0, rows).astype(np.int64)
    stop = np.clip(np.ceil(np.maximum(y0, y1)), 0, rows).astype(np.int64)
    count = np.maximum(stop - start, 0)
    edge = np.repeat(np.arange(count.size), count)
    row = start[edge] + np.arange(edge.size) - np.repeat(np.cumsum(count) - count, count)
    x = x0[edge] + (row - y0[edge]) * (x1[edge] - x0[edge]) / (y1[edge] - y0[edge])
    col = np.clip(np.ceil(x), 0, cols).astype(np.int64)
    crossings = np.bincount(row * (cols + 1) + col, minlength=rows * (cols + 1)).reshape(rows, cols + 1)
    return (np.cumsum(crossings, axis=1)[:, :cols] & 1).astype(bool)


def contour_normal(contours: list[np.ndarray]) -> np.ndarray:
    """Unit normal of the contour planes (Newell's method on the largest contour)."""
    points = max(contours, key=len)
    nxt = np.roll(points, -1, axis=0)
    normal = np.array([
        np.sum((points[:, 1] - nxt[:, 1]) * (points[:, 2] + nxt[:, 2])),
        np.sum((points[:, 2] - nxt[:, 2]) * (points[:, 0] + nxt[:, 0])),
        np.sum((points[:, 0] - nxt[:, 0]) * (points[:, 1] + nxt[:, 1])),
    ])
    if np.linalg.norm(normal) < 1e-9:
        return np.array([0.0, 0.0, 1.0])
    normal /= np.linalg.norm(normal)
    return normal if normal[np.argmax(np.abs(normal))] > 0 else -normal


def contour_planes(contours: list[np.ndarray], normal: np.ndarray) -> np.ndarray:
    """Each contour's position along ``normal`` (mm)."""
    return np.array([float(np.mean(c @ normal)) for c in contours])


def plane_spacing(contours: list[np.ndarray], normal: np.ndarray) -> float | None:
    """Typical distance between contour planes (median step), None with a single plane."""
    positions = np.unique(np.round(contour_planes(contours, normal), PLANE_DECIMALS))
    steps = np.diff(positions)
    return float(np.median(steps)) if steps.size else None


def rasterize(contours: list[np.ndarray], reference: Volume, normal: np.ndarray, spacing: float | None) -> np.ndarray:
    """uint8 mask [k, j, i] of the contours on the reference grid."""
    d = reference.direction
    slice_normal = np.cross(d[:, 0], d[:, 1])
    slice_normal /= np.linalg.norm(slice_normal)
    if abs(abs(np.dot(slice_normal, normal)) - 1) < PARALLEL_TOLERANCE:
        return _rasterize_aligned(contours, reference, normal, spacing)
    return _rasterize_oblique(contours, reference, normal, spacing)


def _rasterize_aligned(contours, reference: Volume, normal, spacing) -> np.ndarray:
    nk, nj, ni = reference.array.shape
    mask = np.zeros((nk, nj, ni), dtype=np.uint8)
    planes: dict[float, list[np.ndarray]] = {}
    for c, position in zip(contours, contour_planes(contours, normal)):
        planes.setdefault(round(float(position), PLANE_DECIMALS), []).append(c)
    positions = np.array(sorted(planes))
    slice_positions = reference.ijk_to_lps(np.column_stack([np.zeros(nk), np.zeros(nk), np.arange(nk)])) @ normal
    if spacing is None:
        spacing = abs(reference.spacing[2] * np.dot(reference.direction[:, 2], normal))
    nearest = np.abs(slice_positions[:, None] - positions[None, :]).argmin(axis=1)
    for k in np.flatnonzero(np.abs(slice_positions - positions[nearest]) <= spacing / 2 + 1e-3):
        polygons = [reference.lps_to_ijk(c)[:, :2] for c in planes[positions[nearest[k]]]]
        mask[k] = fill_polygons(polygons, nj, ni)
    return mask


def _rasterize_oblique(contours, reference: Volume, normal, spacing) -> np.ndarray:
    from ..resample import resample_to

    if spacing is None:
        spacing = min(reference.spacing)
    grid = _plane_grid(np.concatenate(contours), normal, spacing, min(reference.spacing) / 2)
    grid.array = _rasterize_aligned(contours, grid, normal, spacing)
    return resample_to(grid, reference, interpolation="nearest").array.astype(np.uint8)


def _plane_grid(points: np.ndarray, normal: np.ndarray, slice_spacing: float, pixel: float) -> Volume:
    """An empty grid with slices on the contour planes, covering the points plus one empty slice each side."""
    axis = np.eye(3)[np.argmin(np.abs(normal))]
    u = axis - np.dot(axis, normal) * normal
    u /= np.linalg.norm(u)
    direction = np.column_stack([u, np.cross(normal, u), normal])
    local = points @ direction
    low = local.min(axis=0) - [2 * pixel, 2 * pixel, slice_spacing]
    high = local.max(axis=0) + [2 * pixel, 2 * pixel, slice_spacing]
    size = np.ceil((high - low) / [pixel, pixel, slice_spacing]).astype(int) + 1
    return Volume(
        array=np.zeros(size[::-1], dtype=np.uint8),
        spacing=(pixel, pixel, slice_spacing),
        origin=tuple(direction @ low),
        direction=direction,
    )
