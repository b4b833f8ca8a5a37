"""The one volume type of rtsam: a voxel array with its physical geometry.

Physical coordinates are LPS millimetres, as in DICOM and ITK. The array is indexed
``[k, j, i]`` (slice, row, column), as SimpleITK's ``GetArrayFromImage`` returns it, while
``spacing``, ``origin`` and the columns of ``direction`` follow ``(i, j, k)``:

    lps = origin + direction @ (spacing * (i, j, k))

Slicer works in RAS; ``lps_to_ras``/``ras_to_lps`` convert points and ``ras_matrix``
gives Slicer's IJK-to-RAS matrix.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from .errors import GeometryError, InputError

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])


@dataclass
class Volume:
    array: np.ndarray
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    direction: np.ndarray = field(default_factory=lambda: np.eye(3))
    frame_of_reference_uid: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        self.array = np.asarray(self.array)
        if self.array.ndim != 3:
            raise InputError(f"expected a 3D volume, got an array of shape {self.array.shape}")
        self.spacing = tuple(float(s) for s in self.spacing)
        self.origin = tuple(float(o) for o in self.origin)
        self.direction = np.asarray(self.direction, dtype=float).reshape(3, 3)
        if min(self.spacing) <= 0 or not np.all(np.isfinite(self.spacing)):
            raise InputError(f"voxel spacing must be positive and finite, got {self.spacing}")

    # --- grid -----------------------------------------------------------------------
    @property
    def size_ijk(self) -> tuple[int, int, int]:
        """Number of voxels along (i, j, k)."""
        return tuple(int(n) for n in self.array.shape[::-1])

    @property
    def voxel_volume_ml(self) -> float:
        return float(np.prod(self.spacing)) / 1000.0

    @property
    def ijk_to_lps_matrix(self) -> np.ndarray:
        """4x4 homogeneous matrix mapping (i, j, k, 1) to LPS mm."""
        m = np.eye(4)
        m[:3, :3] = self.direction @ np.diag(self.spacing)
        m[:3, 3] = self.origin
        return m

    @property
    def ijk_to_ras_matrix(self) -> np.ndarray:
        """Slicer's IJKToRAS matrix for this grid."""
        m = self.ijk_to_lps_matrix
        m[:3] = np.diag([-1.0, -1.0, 1.0, 1.0])[:3] @ m
        return m

    def ijk_to_lps(self, ijk) -> np.ndarray:
        ijk = np.asarray(ijk, dtype=float)
        return ijk @ (self.direction @ np.diag(self.spacing)).T + np.asarray(self.origin)

    def lps_to_ijk(self, lps) -> np.ndarray:
        """Continuous voxel indices (i, j, k) of LPS points."""
        lps = np.asarray(lps, dtype=float)
        inv = np.linalg.inv(self.direction @ np.diag(self.spacing))
        return (lps - np.asarray(self.origin)) @ inv.T

    def contains_lps(self, lps, tolerance_voxels: float = 0.5) -> np.ndarray:
        ijk = np.atleast_2d(self.lps_to_ijk(lps))
        size = np.asarray(self.size_ijk)
        return np.all((ijk >= -tolerance_voxels) & (ijk <= size - 1 + tolerance_voxels), axis=1)

    def check_inside(self, lps, what: str = "point") -> None:
        """Raise a GeometryError naming the first point outside the image."""
        pts = np.atleast_2d(np.asarray(lps, dtype=float))
        inside = self.contains_lps(pts)
        if not inside.all():
            bad = pts[~inside][0]
            lo, hi = self.bounds_lps()
            raise GeometryError(
                f"{what} at LPS ({bad[0]:.1f}, {bad[1]:.1f}, {bad[2]:.1f}) mm is outside the image "
                f"(extent {np.round(lo, 1).tolist()} to {np.round(hi, 1).tolist()} mm)",
                self.metadata.get("path"),
            )

    def corners_lps(self) -> np.ndarray:
        """The 8 corner voxel centres in LPS mm."""
        n = np.asarray(self.size_ijk) - 1
        corners = np.array([[a, b, c] for a in (0, n[0]) for b in (0, n[1]) for c in (0, n[2])])
        return self.ijk_to_lps(corners)

    def bounds_lps(self) -> tuple[np.ndarray, np.ndarray]:
        """Axis-aligned LPS bounding box of the voxel centres."""
        c = self.corners_lps()
        return c.min(axis=0), c.max(axis=0)

    def same_grid(self, other: "Volume", atol: float = 1e-4) -> bool:
        return self.grid_difference(other, atol, atol, atol) is None

    def grid_difference(self, other: "Volume", spacing_atol: float = 1e-4, origin_atol: float = 1e-4,
                        direction_atol: float = 1e-4) -> str | None:
        """The first way ``other``'s grid differs from this one (size, spacing, origin, direction), or None."""
        if self.array.shape != other.array.shape:
            return f"size {self.size_ijk} voxels vs {other.size_ijk}"
        checks = (("spacing", self.spacing, other.spacing, spacing_atol),
                  ("origin", self.origin, other.origin, origin_atol),
                  ("direction", self.direction, other.direction, direction_atol))
        for what, ours, theirs, atol in checks:
            if not np.allclose(ours, theirs, atol=atol):
                return f"{what} {np.round(ours, 4).tolist()} vs {np.round(theirs, 4).tolist()}"
        return None

    def with_array(self, array: np.ndarray, **metadata) -> "Volume":
        """A volume on the same grid holding ``array``."""
        array = np.asarray(array)
        if array.shape != self.array.shape:
            raise GeometryError(f"array shape {array.shape} does not match grid {self.array.shape}")
        return replace(self, array=array, metadata={**self.metadata, **metadata})

    # --- SimpleITK ------------------------------------------------------------------
    def to_sitk(self):
        import SimpleITK as sitk

        array = self.array
        if array.dtype == bool:
            array = array.astype(np.uint8)
        image = sitk.GetImageFromArray(np.ascontiguousarray(array))
        image.SetSpacing(self.spacing)
        image.SetOrigin(self.origin)
        image.SetDirection(tuple(self.direction.ravel()))
        return image

    @classmethod
    def from_sitk(cls, image, **kwargs) -> "Volume":
        import SimpleITK as sitk

        if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
            raise InputError(
                f"expected a 3D single-component image, got {image.GetDimension()}D with "
                f"{image.GetNumberOfComponentsPerPixel()} components",
                kwargs.get("metadata", {}).get("path"),
            )
        return cls(
            array=sitk.GetArrayFromImage(image),
            spacing=image.GetSpacing(),
            origin=image.GetOrigin(),
            direction=np.asarray(image.GetDirection()).reshape(3, 3),
            **kwargs,
        )


def lps_to_ras(points) -> np.ndarray:
    return np.asarray(points, dtype=float) @ LPS_TO_RAS


def ras_to_lps(points) -> np.ndarray:
    return np.asarray(points, dtype=float) @ LPS_TO_RAS
