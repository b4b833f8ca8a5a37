"""From the image to the model's crop and back, like SAM-Med3D's pipeline.

- The crop is a cube of ``size`` voxels at isotropic ``spacing`` (1.5 mm) in the image's own
  orientation (same direction cosines, nothing is reoriented), centred on the box centre (or the
  first click): voxel ``size/2`` of every axis sits on the centre.
- Boxes larger than the crop's field of view (``size * 1.5`` = 192 mm for ViT-B) get a coarser
  spacing, ``extent / (size - 2)``, so the whole box fits in one crop (one embedding, no stitching).
- Intensities: trilinear resampling, outside the image padded with the image minimum, then a
  z-score with the mean and standard deviation of the crop's voxels > 0 (SAM-Med3D's
  ``ZNormalization(masking_method=x > 0)``), or of the whole crop when under 1% are > 0.
- Results come back by trilinear resampling of the crop's probability onto the image grid
  (only over the image region the crop covers; 0 elsewhere).
- Model coordinates are continuous crop voxel indices in array order (k, j, i) = (d, h, w).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...volume import Volume

MIN_FOREGROUND_FRACTION = 0.01


@dataclass(frozen=True)
class CropGeometry:
    size: int
    spacing: float
    origin: tuple[float, float, float]  # LPS mm of voxel (0, 0, 0)
    direction: tuple[float, ...]  # 9 values, row-major, columns are the i, j, k axes

    @property
    def key(self) -> tuple:
        """Hashable identity for the embedding cache (rounded to 1 micrometre)."""
        return (self.size, round(self.spacing, 6), *np.round(self.origin, 3), *np.round(self.direction, 6))

    def volume(self, array: np.ndarray | None = None) -> Volume:
        if array is None:
            array = np.zeros((self.size,) * 3, dtype=np.uint8)
        return Volume(array, (self.spacing,) * 3, self.origin, np.reshape(self.direction, (3, 3)))

    def lps_to_dhw(self, lps) -> np.ndarray:
        """LPS points ``[N, 3]`` -> continuous crop indices in (d, h, w) = (k, j, i) order."""
        to_lps = np.reshape(self.direction, (3, 3)) * self.spacing
        ijk = (np.atleast_2d(np.asarray(lps, dtype=float)) - np.asarray(self.origin)) @ np.linalg.inv(to_lps).T
        return ijk[:, ::-1].copy()

    def contains(self, lps) -> bool:
        dhw = self.lps_to_dhw(lps)
        return bool(np.all((dhw >= 0) & (dhw <= self.size - 1)))

    def box_dhw(self, box_lps: np.ndarray) -> np.ndarray:
        """Axis-aligned LPS box -> ``[2, 3]`` (min, max) crop indices, clipped to the crop."""
        corners = np.array([[box_lps[a, 0], box_lps[b, 1], box_lps[c, 2]]
                            for a in (0, 1) for b in (0, 1) for c in (0, 1)])
        dhw = self.lps_to_dhw(corners)
        return np.clip(np.stack([dhw.min(0), dhw.max(0)]), 0, self.size - 1)


def crop_spacing(image: Volume, box_lps: np.ndarray | None, size: int, base_spacing: float) -> float:
    """``base_spacing``, or coarser when the box does not fit ``size`` voxels along a crop axis."""
    if box_lps is None:
        return base_spacing
    corners = np.array([[box_lps[a, 0], box_lps[b, 1], box_lps[c, 2]] for a in (0, 1) for b in (0, 1) for c in (0, 1)])
    along_axes = corners @ image.direction  # coordinates along the image's i, j, k axes
    extent = float((along_axes.max(0) - along_axes.min(0)).max())
    return max(base_spacing, extent / (size - 2))  # centre at voxel size/2: the box spans [1, size - 1]


def crop_geometry(image: Volume, centre_lps, size: int, spacing: float) -> CropGeometry:
    half = image.direction @ np.full(3, spacing * size / 2)
    origin = np.asarray(centre_lps, dtype=float) - half
    return CropGeometry(size, float(spacing), tuple(float(v) for v in origin), tuple(image.direction.ravel()))


def extract_crop(image: Volume, geometry: CropGeometry, sitk_image=None) -> np.ndarray:
    """The image resampled onto the crop grid, float32 ``[S, S, S]`` (array order k, j, i)."""
    import SimpleITK as sitk

    source = sitk_image if sitk_image is not None else image.to_sitk()
    pad = float(np.min(image.array))
    reference = geometry.volume().to_sitk()
    crop = sitk.Resample(source, reference, sitk.Transform(), sitk.sitkLinear, pad, sitk.sitkFloat32)
    return sitk.GetArrayFromImage(crop)


def normalise(crop: np.ndarray) -> np.ndarray:
    """Z-score on the voxels > 0 (SAM-Med3D), or the whole crop when too few are > 0."""
    foreground = crop > 0
    values = crop[foreground] if foreground.mean() >= MIN_FOREGROUND_FRACTION else crop
    mean, std = float(values.mean()), float(values.std())
    return ((crop - mean) / max(std, 1e-6)).astype(np.float32)


def to_image_grid(crop_values: np.ndarray, geometry: CropGeometry, image: Volume) -> np.ndarray:
    """Crop-grid values ``[S, S, S]`` -> float32 array on the image grid (0 outside the crop)."""
    import SimpleITK as sitk

    lo, hi = _covered_index_range(geometry, image)
    out = np.zeros(image.array.shape, dtype=np.float32)
    if np.any(hi < lo):
        return out
    sub_size = (hi - lo + 1).astype(int)  # (i, j, k)
    reference = sitk.Image([int(n) for n in sub_size], sitk.sitkFloat32)
    reference.SetSpacing(image.spacing)
    reference.SetOrigin(tuple(image.ijk_to_lps(lo)))
    reference.SetDirection(tuple(image.direction.ravel()))
    source = geometry.volume(crop_values.astype(np.float32)).to_sitk()
    values = sitk.Resample(source, reference, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    out[lo[2]:hi[2] + 1, lo[1]:hi[1] + 1, lo[0]:hi[0] + 1] = sitk.GetArrayFromImage(values)
    return out


def _covered_index_range(geometry: CropGeometry, image: Volume) -> tuple[np.ndarray, np.ndarray]:
    """Inclusive (i, j, k) index range of the image voxels that the crop covers."""
    ijk = image.lps_to_ijk(geometry.volume().corners_lps())
    lo = np.maximum(np.floor(ijk.min(0)), 0).astype(int)
    hi = np.minimum(np.ceil(ijk.max(0)), np.asarray(image.size_ijk) - 1).astype(int)
    return lo, hi
