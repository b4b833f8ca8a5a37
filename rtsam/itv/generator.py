"""Synthetic 4DCT from a real CT and its lesion mask (no real 4DCT is reachable).

Breathing follows Lujan's model: the excursion at time t of a period tau is
``cos^(2n)(pi t / tau)`` with n = 2 (cos^4): 1 at end-inhale (phase 0 %), 0 at end-exhale
(50 %), where the given CT sits. At inhale the lesion moves inferior (-S) and anterior (-P).
The displacement is smooth and fades with distance d from the lesion (1 inside, C2
smootherstep to 0 at d = fade_mm, so only a box around the lesion is warped); the CT
(linear) and the mask (nearest) are warped through the same field, so the truth ITV is
exactly the union of the warped masks.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..errors import GeometryError, InputError
from ..volume import Volume

FIELD_SPACING_MM = 2.5  # displacement field grid (coarser than the CT; the field is smooth)


class Generated4DCT(NamedTuple):
    phases: list[Volume]
    phase_masks: list[Volume]  # warped masks, plus transient false positives when asked
    truth_itv: Volume  # union of the warped masks (without false positives)


def lujan_excursion(fraction, exponent: int = 2):
    """Fraction of the full excursion at phase ``fraction`` of the cycle: cos^(2n)(pi * fraction)."""
    return np.cos(np.pi * np.asarray(fraction, dtype=float)) ** (2 * exponent)


def phase_shift_lps(fraction: float, amplitude_si_mm: float, amplitude_ap_mm: float) -> np.ndarray:
    """Lesion displacement (LPS mm) at a phase: inferior and anterior at inhale."""
    return float(lujan_excursion(fraction)) * np.array([0.0, -amplitude_ap_mm, -amplitude_si_mm])


def make_4dct(image: Volume, mask: Volume, phases: int = 10, amplitude_si_mm: float = 10.0,
              amplitude_ap_mm: float = 4.0, fade_mm: float = 30.0, transient_fp: int = 0,
              fp_radius_mm: float = 5.0, seed: int = 0) -> Generated4DCT:
    """Warp ``image`` and ``mask`` through ``phases`` evenly spaced breathing phases."""
    if phases < 2:
        raise InputError(f"a 4DCT needs at least 2 phases, got {phases}")
    if not mask.same_grid(image):
        raise GeometryError("lesion mask is not on the CT grid", mask.metadata.get("path"))
    lesion = mask.array > 0
    if not lesion.any():
        raise InputError("lesion mask is empty", mask.metadata.get("path"))
    if transient_fp > phases:
        raise InputError(f"at most one transient false positive per phase ({phases}), got {transient_fp}")
    if max(amplitude_si_mm, amplitude_ap_mm) > fade_mm / 2:
        raise InputError(f"amplitudes must be at most fade_mm / 2 = {fade_mm / 2:g} mm to keep the warp invertible")
    weight, box = _fade_weight(mask.with_array(lesion.astype(np.uint8)), fade_mm, max(amplitude_si_mm, amplitude_ap_mm))
    sub_image, sub_lesion = _crop(image, box), _crop(mask.with_array(lesion.astype(np.uint8)), box)
    out_images, out_masks = [], []
    for n in range(phases):
        shift = phase_shift_lps(n / phases, amplitude_si_mm, amplitude_ap_mm)
        meta = {"phase_percent": 100.0 * n / phases, "shift_lps_mm": shift.tolist(), "path": None}
        warped_image, warped_mask = image.array.copy(), np.zeros(lesion.shape, np.uint8)
        warped_image[box], warped_mask[box] = _warp(sub_image, sub_lesion, weight, shift)
        out_images.append(image.with_array(warped_image, **meta))
        out_masks.append(mask.with_array(warped_mask, **meta))
    truth = mask.with_array(np.any([m.array for m in out_masks], axis=0).astype(np.uint8), path=None)
    if transient_fp:
        _add_false_positives(out_masks, truth, transient_fp, fp_radius_mm, np.random.default_rng(seed))
    return Generated4DCT(out_images, out_masks, truth)


def smootherstep_fade(distance_mm, fade_mm: float):
    """1 at the lesion, falling smoothly (C2) to 0 at ``fade_mm`` and beyond."""
    x = np.clip(np.asarray(distance_mm, dtype=float) / fade_mm, 0.0, 1.0)
    return 1.0 - x ** 3 * (10 - 15 * x + 6 * x ** 2)


def _fade_weight(mask: Volume, fade_mm: float, reach_mm: float):
    """The weight on a coarse SimpleITK grid, and the index box (slices) of the CT that can move."""
    import SimpleITK as sitk
    from scipy import ndimage

    step = [max(1, int(FIELD_SPACING_MM // s)) for s in mask.spacing]
    size = [int(np.ceil((n - 1) / st)) + 1 for n, st in zip(mask.size_ijk, step)]
    coarse = sitk.Image(size, sitk.sitkUInt8)
    coarse.SetSpacing([s * st for s, st in zip(mask.spacing, step)])
    coarse.SetOrigin(mask.origin)
    coarse.SetDirection(tuple(mask.direction.ravel()))
    grown = ndimage.maximum_filter(mask.array, size=step[::-1], origin=0)
    coarse_mask = sitk.Resample(mask.with_array(grown).to_sitk(), coarse, sitk.Transform(), sitk.sitkNearestNeighbor)
    inside = sitk.GetArrayFromImage(coarse_mask) > 0
    distance = ndimage.distance_transform_edt(~inside, sampling=coarse.GetSpacing()[::-1])
    values = smootherstep_fade(distance, fade_mm)
    weight = sitk.GetImageFromArray(values)
    weight.CopyInformation(coarse)
    moving = np.argwhere(values > 0)
    reach = np.ceil(reach_mm / np.asarray(mask.spacing[::-1])).astype(int)
    lo = np.maximum((moving.min(axis=0) - 1) * step[::-1] - reach, 0)
    hi = np.minimum((moving.max(axis=0) + 2) * step[::-1] + reach, mask.array.shape)
    return weight, tuple(slice(a, b) for a, b in zip(lo, hi))


def _crop(volume: Volume, box: tuple[slice, ...]) -> Volume:
    corner = [box[2].start, box[1].start, box[0].start]
    return Volume(volume.array[box], volume.spacing, tuple(volume.ijk_to_lps(corner)), volume.direction)


def _warp(image: Volume, lesion: Volume, weight, shift: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Tissue at p moves to p + w(p) * shift; resampling needs the inverse (backward) field."""
    import SimpleITK as sitk

    field = sitk.GetImageFromArray(_backward_field(weight, shift), isVector=True)
    field.CopyInformation(weight)
    transform = sitk.DisplacementFieldTransform(sitk.Cast(field, sitk.sitkVectorFloat64))
    reference = image.to_sitk()
    background = float(image.array.min())
    warped = sitk.Resample(reference, reference, transform, sitk.sitkLinear, background, reference.GetPixelID())
    warped_mask = sitk.Resample(lesion.to_sitk(), reference, transform, sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    return sitk.GetArrayFromImage(warped), sitk.GetArrayFromImage(warped_mask)


def _backward_field(weight, shift: np.ndarray, iterations: int = 8) -> np.ndarray:
    """v(x) = -w(x + v(x)) * shift by fixed-point iteration (a contraction: |grad w| |shift| < 1)."""
    import SimpleITK as sitk
    from scipy import ndimage

    w = sitk.GetArrayFromImage(weight)
    to_index = np.linalg.inv(np.asarray(weight.GetDirection()).reshape(3, 3) @ np.diag(weight.GetSpacing()))
    step_kji = (to_index @ shift)[::-1]
    grid = np.indices(w.shape, dtype=float)
    factor = -w
    for _ in range(iterations):
        coords = grid + factor[None] * step_kji[:, None, None, None]
        factor = -ndimage.map_coordinates(w, coords, order=1, mode="nearest")
    return factor[..., None] * shift[None, None, None, :]


def _add_false_positives(masks: list[Volume], truth: Volume, count: int, radius_mm: float, rng) -> None:
    """One ball per chosen phase, away from the truth ITV and from each other."""
    from scipy import ndimage

    spacing = np.asarray(truth.spacing[::-1])
    free = ndimage.distance_transform_edt(truth.array == 0, sampling=spacing) > 3 * radius_mm
    margin = np.ceil(radius_mm / spacing).astype(int)
    interior = np.zeros_like(free)
    interior[tuple(slice(m, n - m) for m, n in zip(margin, free.shape))] = True
    candidates = np.argwhere(free & interior)
    if len(candidates) < count:
        raise InputError("image too small to place transient false positives away from the lesion")
    grid = np.indices(truth.array.shape, sparse=True)
    for n in rng.choice(len(masks), size=count, replace=False):
        centre = candidates[rng.integers(len(candidates))]
        ball = sum(((g - c) * s) ** 2 for g, c, s in zip(grid, centre, spacing)) <= radius_mm ** 2
        masks[n].array[ball] = 1
        masks[n].metadata["false_positive_voxel"] = centre[::-1].tolist()
