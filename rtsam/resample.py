"""Resampling between grids (SimpleITK) and checks that two volumes can be combined."""

from __future__ import annotations

import numpy as np

from .errors import GeometryError, InputError
from .volume import Volume

INTERPOLATORS = ("linear", "nearest")
MAX_OVERLAP_SAMPLES = 32  # per axis, when estimating the overlap fraction


def resample_to(volume: Volume, reference: Volume, interpolation: str = "linear", default_value: float = 0.0) -> Volume:
    """``volume`` resampled onto ``reference``'s grid (identity transform, LPS mm); outside -> default_value."""
    import SimpleITK as sitk

    if interpolation not in INTERPOLATORS:
        raise InputError(f"interpolation must be one of {INTERPOLATORS}, got {interpolation!r}")
    source = volume.array
    if interpolation == "linear" and not np.issubdtype(source.dtype, np.floating):
        source = source.astype(np.float32)
    image = volume.with_array(source).to_sitk()
    resampler = sitk.ResampleImageFilter()
    resampler.SetSize([int(n) for n in reference.size_ijk])
    resampler.SetOutputSpacing(reference.spacing)
    resampler.SetOutputOrigin(reference.origin)
    resampler.SetOutputDirection(tuple(reference.direction.ravel()))
    resampler.SetInterpolator(sitk.sitkLinear if interpolation == "linear" else sitk.sitkNearestNeighbor)
    resampler.SetDefaultPixelValue(float(default_value))
    resampler.SetOutputPixelType(image.GetPixelID())
    array = sitk.GetArrayFromImage(resampler.Execute(image))
    if volume.array.dtype == bool:
        array = array.astype(bool)
    return Volume(
        array=array,
        spacing=reference.spacing,
        origin=reference.origin,
        direction=reference.direction.copy(),
        frame_of_reference_uid=volume.frame_of_reference_uid or reference.frame_of_reference_uid,
        metadata={**volume.metadata, "resampled_to": reference.metadata.get("path")},
    )


def same_voxel_centres(a: Volume, b: Volume, atol_mm: float = 1e-3) -> bool:
    """Whether two grids hold the same voxel centres, whatever the order or sense of their axes."""
    if sorted(a.array.shape) != sorted(b.array.shape) or not np.allclose(sorted(a.spacing), sorted(b.spacing), atol=atol_mm):
        return False
    distances = np.linalg.norm(a.corners_lps()[:, None] - b.corners_lps()[None], axis=2)
    return bool(np.all(distances.min(axis=1) < atol_mm))


def on_same_voxels(volume: Volume, grid: Volume) -> Volume:
    """``volume`` on ``grid`` when both hold the same voxel centres (axes flipped or swapped: exact,
    nearest neighbour at coinciding centres); otherwise unchanged, for the caller's grid check to name."""
    if volume.same_grid(grid) or not same_voxel_centres(volume, grid):
        return volume
    return resample_to(volume, grid, "nearest")


def overlap_fraction(moving: Volume, reference: Volume) -> float:
    """Fraction of ``moving``'s voxel centres (sampled on a coarse lattice) inside ``reference``'s extent."""
    axes = [np.unique(np.linspace(0, n - 1, min(n, MAX_OVERLAP_SAMPLES)).round()) for n in moving.size_ijk]
    ijk = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    return float(np.mean(reference.contains_lps(moving.ijk_to_lps(ijk))))


def check_compatible(moving: Volume, reference: Volume, allow_frame_mismatch: bool = False) -> float:
    """GeometryError (naming ``moving``'s file) when frames of reference differ or the grids do not overlap.

    Returns the overlap fraction. ``allow_frame_mismatch`` skips only the frame-of-reference check.
    """
    path = moving.metadata.get("path")
    reference_name = reference.metadata.get("path") or "the reference image"
    ours, theirs = moving.frame_of_reference_uid, reference.frame_of_reference_uid
    if ours and theirs and ours != theirs and not allow_frame_mismatch:
        raise GeometryError(
            f"frame of reference {ours} differs from {theirs} of {reference_name} "
            "(use --allow-frame-mismatch if they are known to be registered)",
            path,
        )
    fraction = overlap_fraction(moving, reference)
    # A thin reference (one slice) can fall between the sampled planes of a larger moving grid.
    if fraction == 0 and overlap_fraction(reference, moving) == 0:
        lo, hi = moving.bounds_lps()
        rlo, rhi = reference.bounds_lps()
        raise GeometryError(
            f"does not overlap {reference_name}: extent {np.round(lo, 1).tolist()} to {np.round(hi, 1).tolist()} mm "
            f"vs {np.round(rlo, 1).tolist()} to {np.round(rhi, 1).tolist()} mm",
            path,
        )
    return fraction
