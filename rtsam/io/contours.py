"""Binary masks -> closed planar contours along voxel edges (the inverse of rasterize.py).

Each loop follows the edges between voxels inside and outside the mask, so filling the
loops of a slice with the even-odd rule at voxel centres gives the slice back exactly.
Holes are loops of their own; voxels touching only at a corner get separate loops.
"""

from __future__ import annotations

import numpy as np

from ..volume import Volume


def slice_loops(mask: np.ndarray) -> list[np.ndarray]:
    """Closed loops (n, 2) of corner vertices in continuous (i, j) indices of a 2D mask [j, i]."""
    start, step = _boundary_edges(np.pad(np.asarray(mask, dtype=bool), 1))
    if not len(start):
        return []
    following = _following_edges(start, step)
    loops, seen = [], np.zeros(len(start), dtype=bool)
    for first in range(len(start)):
        if seen[first]:
            continue
        loop = [first]
        seen[first] = True
        while not seen[following[loop[-1]]]:
            loop.append(following[loop[-1]])
            seen[loop[-1]] = True
        loops.append(_corners(start[loop], step[loop]) - 1.5)  # padded corner -> voxel index
    return loops


def mask_contours(mask: Volume) -> list[tuple[int, np.ndarray]]:
    """(slice k, contour (n, 3) in LPS mm) for every loop of every slice of a mask."""
    found = []
    for k in np.flatnonzero(mask.array.reshape(mask.array.shape[0], -1).any(axis=1)):
        for loop in slice_loops(mask.array[k] != 0):
            found.append((int(k), mask.ijk_to_lps(np.column_stack([loop, np.full(len(loop), k)]))))
    return found


def _boundary_edges(padded: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit edges (start corner (x, y), step) between inside and outside voxels, inside on the
    side ``(-step_y, step_x)``. Voxel [r, c] spans corners x in [c, c+1], y in [r, r+1]."""
    inside = padded.astype(np.int8)
    vertical = inside[:, 1:] - inside[:, :-1]  # +1: inside right of x = c + 1
    horizontal = inside[1:, :] - inside[:-1, :]  # +1: inside below y = r + 1
    r, c = np.nonzero(vertical)
    v = vertical[r, c]
    v_start = np.column_stack([c + 1, np.where(v > 0, r + 1, r)])
    v_step = np.column_stack([np.zeros_like(v), -v])
    r, c = np.nonzero(horizontal)
    h = horizontal[r, c]
    h_start = np.column_stack([np.where(h > 0, c, c + 1), r + 1])
    h_step = np.column_stack([h, np.zeros_like(h)])
    return np.concatenate([v_start, h_start]).astype(np.int64), np.concatenate([v_step, h_step]).astype(np.int64)


def _following_edges(start: np.ndarray, step: np.ndarray) -> np.ndarray:
    """Index of the edge that continues each edge; where two leave one corner (voxels touching
    diagonally), the one turning towards the inside, which keeps such voxels apart."""
    width = int(start[:, 0].max()) + 2
    start_key = start[:, 1] * width + start[:, 0]
    end = start + step
    end_key = end[:, 1] * width + end[:, 0]
    order = np.argsort(start_key, kind="stable")
    first = np.searchsorted(start_key[order], end_key)
    second = np.minimum(first + 1, len(order) - 1)
    a, b = order[first], order[second]
    inward = np.column_stack([-step[:, 1], step[:, 0]])
    take_b = (start_key[b] == end_key) & (b != a) & np.all(step[b] == inward, axis=1)
    return np.where(take_b, b, a)


def _corners(start: np.ndarray, step: np.ndarray) -> np.ndarray:
    """The loop's vertices where it turns (collinear vertices merged)."""
    turns = np.any(step != np.roll(step, 1, axis=0), axis=1)
    return start[turns].astype(float)
