"""Contour propagation between phases by image registration.

The reference phase's result (the user's mask, or the engine's segmentation of the reference
phase) is carried to every other phase by registering the reference phase onto it inside a
box around the structure (the structure's box plus CONTEXT_MM): first a translation fitted to
the structure's neighbourhood (the structure grown by REGION_MM, so its edges carry the
signal), then, for ``deformable``, a B-spline (MESH_MM control grid) on top of it. Phases
share one grid (``Phases`` resamples them), so the crop is the same index box in each.

On the generated 4DCTs (10 phases, 10 mm SI + 4 mm AP) this carries a GTV with ITV Dice
0.994 (lung2) and 0.889 (brain1, 6.5 mm slices; moving the mask by the true shifts: 0.888) in
0.3-0.7 s per phase (translation), where propagating LiteMedSAM prompts from phase to phase
gave 0.73 and 0.58 in 30-40 s per phase.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..engines.base import ProgressCallback, check_cancel
from ..errors import InputError
from ..volume import Volume
from .phases import Phases
from .propagate import Propagation

CONTEXT_MM = 25.0  # crop margin around the structure: covers the motion between phases
REGION_MM = 5.0  # the metric's region: the structure grown by this much
MESH_MM = 25.0  # B-spline control point spacing
METHODS = ("rigid", "deformable")


@dataclass
class Registered:
    mask: Volume  # the reference mask carried onto the target phase (uint8, same grid)
    shift_lps_mm: np.ndarray  # the fitted translation: how far the structure moved
    at_crop_edge: bool  # the carried mask reaches the crop: the motion may exceed CONTEXT_MM


def register_mask(reference: Volume, mask: Volume, target: Volume, method: str = "rigid") -> Registered:
    """Carry ``mask`` (on ``reference``'s grid) onto ``target``, a phase on the same grid."""
    import SimpleITK as sitk

    if method not in METHODS:
        raise InputError(f"registration must be one of {METHODS}, got {method!r}")
    if not (reference.same_grid(mask) and reference.same_grid(target)):
        raise InputError("registration needs the reference phase, its mask and the target phase on one grid")
    if not mask.array.any():
        raise InputError("the reference mask is empty: nothing to propagate", mask.metadata.get("path"))
    crop = _crop_slices(mask, CONTEXT_MM)
    fixed, moving = _crop(target, crop, sitk.sitkFloat32), _crop(reference, crop, sitk.sitkFloat32)
    region = _grown(mask, crop, REGION_MM)
    transform = _translation(fixed, moving, region)
    shift = -np.asarray(transform.GetOffset())  # the transform maps target points to reference points
    if method == "deformable":
        transform = _bspline(fixed, moving, region, transform)
    carried = sitk.Resample(_crop(mask, crop, sitk.sitkFloat32), fixed, transform, sitk.sitkLinear, 0.0)
    inside = sitk.GetArrayFromImage(carried) > 0.5
    full = np.zeros(mask.array.shape, dtype=np.uint8)
    full[crop] = inside
    return Registered(target.with_array(full, path=None), shift, _touches_edge(inside, mask.array.shape, crop))


def shifted_mask(mask: Volume, shift_lps_mm) -> Volume:
    """``mask`` moved by a known translation (LPS mm), resampled as ``register_mask`` does."""
    import SimpleITK as sitk

    image = sitk.Cast(mask.to_sitk(), sitk.sitkFloat32)
    moved = sitk.Resample(image, image, sitk.TranslationTransform(3, (-np.asarray(shift_lps_mm, float)).tolist()),
                          sitk.sitkLinear, 0.0)
    return mask.with_array((sitk.GetArrayFromImage(moved) > 0.5).astype(np.uint8), path=None)


def _crop_slices(mask: Volume, margin_mm: float) -> tuple[slice, ...]:
    voxels = np.argwhere(mask.array > 0)
    pad = np.ceil(margin_mm / np.asarray(mask.spacing[::-1])).astype(int)
    lo = np.maximum(voxels.min(axis=0) - pad, 0)
    hi = np.minimum(voxels.max(axis=0) + pad + 1, mask.array.shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))


def _crop(volume: Volume, crop: tuple[slice, ...], pixel_type):
    import SimpleITK as sitk

    k, j, i = crop
    return sitk.Cast(volume.to_sitk()[i.start:i.stop, j.start:j.stop, k.start:k.stop], pixel_type)


def _grown(mask: Volume, crop: tuple[slice, ...], margin_mm: float):
    import SimpleITK as sitk

    region = _crop(mask, crop, sitk.sitkUInt8)
    radius = [int(round(margin_mm / s)) for s in mask.spacing]
    return sitk.BinaryDilate(region, radius) if any(radius) else region


def _translation(fixed, moving, region):
    """Translation minimising the mean squared difference inside ``region`` (coarse to fine)."""
    import SimpleITK as sitk

    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMeanSquares()
    method.SetMetricMovingMask(region)
    method.SetOptimizerAsRegularStepGradientDescent(learningRate=2.0, minStep=0.01, numberOfIterations=100)
    method.SetOptimizerScalesFromPhysicalShift()
    _pyramid(method, fixed)
    translation = sitk.TranslationTransform(3)
    method.SetInitialTransform(translation, inPlace=True)
    method.SetInterpolator(sitk.sitkLinear)
    method.Execute(fixed, moving)
    return translation


def _bspline(fixed, moving, region, translation):
    """A B-spline refinement composed after ``translation``."""
    import SimpleITK as sitk

    mesh = [max(1, int(round(n * s / MESH_MM))) for n, s in zip(fixed.GetSize(), fixed.GetSpacing())]
    bspline = sitk.BSplineTransformInitializer(fixed, mesh, order=3)
    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMeanSquares()
    method.SetMetricMovingMask(region)
    method.SetMetricSamplingStrategy(method.REGULAR)
    method.SetMetricSamplingPercentagePerLevel([0.05, 0.02], seed=1)  # 3x faster than 0.2/0.05, same Dice
    method.SetOptimizerAsLBFGSB(gradientConvergenceTolerance=1e-5, numberOfIterations=20)
    _pyramid(method, fixed)
    method.SetMovingInitialTransform(translation)
    method.SetInitialTransform(bspline, inPlace=True)
    method.SetInterpolator(sitk.sitkLinear)
    method.Execute(fixed, moving)
    return sitk.CompositeTransform([translation, bspline])


def _pyramid(method, image) -> None:
    """Two levels (half, then full resolution). ITK's recursive Gaussians (pyramid smoothing,
    precomputed image gradients) need 4 voxels along every axis: thin crops go without them."""
    method.SetShrinkFactorsPerLevel([2, 1])
    method.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    if min(image.GetSize()) >= 4:
        method.SetSmoothingSigmasPerLevel([1.0, 0.0])
    else:
        method.SetSmoothingSigmasPerLevel([0.0, 0.0])
        method.MetricUseFixedImageGradientFilterOff()
        method.MetricUseMovingImageGradientFilterOff()


def _touches_edge(inside: np.ndarray, shape: tuple[int, ...], crop: tuple[slice, ...]) -> bool:
    """True when the carried mask reaches a crop face that is not also the image's face."""
    for axis, window in enumerate(crop):
        faces = np.moveaxis(inside, axis, 0)
        if (window.start > 0 and faces[0].any()) or (window.stop < shape[axis] and faces[-1].any()):
            return True
    return False


def register_phases(phases: Phases, reference_mask: Volume, method: str = "rigid",
                    progress: ProgressCallback | None = None, cancel: Callable[[], bool] | None = None) -> Propagation:
    """Every phase's mask: ``reference_mask`` on the reference phase, carried to the others."""
    count, ref = len(phases), phases.reference
    result = Propagation([None] * count, [None] * count, [None] * count, [ref] * count, ref, timings_s=[0.0] * count)
    result.sources[ref] = None
    result.masks[ref] = reference_mask
    labels = phases.labels()
    for n, k in enumerate(k for k in range(count) if k != ref):
        check_cancel(cancel)
        start = time.perf_counter()
        carried = register_mask(phases.grid, reference_mask, phases.volumes[k], method)
        result.timings_s[k] = time.perf_counter() - start
        result.masks[k] = carried.mask
        if carried.at_crop_edge:
            result.warnings.append(f"phase {labels[k]}: the structure moved about "
                                   f"{np.linalg.norm(carried.shift_lps_mm):.0f} mm and reaches the registration "
                                   f"box ({CONTEXT_MM:g} mm around it); check it")
        if progress is not None:
            progress((n + 1) / (count - 1), f"phase {labels[k]}")
    result.probabilities = list(result.masks)  # 0/1: the median filter reads them as certain
    result.empty = [k for k in range(count) if not result.masks[k].array.any()]
    return result
