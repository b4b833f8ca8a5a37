"""RTDOSE -> a float32 Volume in Gy on the dose grid (LPS mm)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputError
from ..volume import Volume
from .dicom import floats, orientation, pixel_array, read_dataset

UNIT_TO_GY = {"GY": 1.0, "CGY": 0.01}


def read_rtdose(path: str | Path) -> Volume:
    """Read an RTDOSE file (single or multi-frame) as dose in Gy, float32, array [k, j, i]."""
    path = Path(path)
    ds = read_dataset(path, "RTDOSE")
    units = str(ds.get("DoseUnits", "GY")).upper()
    if units not in UNIT_TO_GY:
        raise InputError(f"DoseUnits {units!r} cannot be converted to Gy", path)
    scaling = float(floats(ds, "DoseGridScaling", path, 1, default=1.0)[0])
    dose = _frames(ds, path).astype(np.float64) * scaling * UNIT_TO_GY[units]
    _check_values(dose, path)

    direction = orientation(ds, path)
    ipp = floats(ds, "ImagePositionPatient", path, 3)
    offsets = _frame_offsets(ds, dose.shape[0], ipp, direction[:, 2], path)
    order = np.argsort(offsets, kind="stable")
    dose, offsets = dose[order], offsets[order]
    row_spacing, col_spacing = floats(ds, "PixelSpacing", path, 2)
    return Volume(
        array=dose.astype(np.float32),
        spacing=(col_spacing, row_spacing, _slice_spacing(ds, offsets, path)),
        origin=tuple(ipp + offsets[0] * direction[:, 2]),
        direction=direction,
        frame_of_reference_uid=str(ds.get("FrameOfReferenceUID", "")) or None,
        metadata={
            "path": str(path),
            "modality": "RTDOSE",
            "dose_summation_type": str(ds.get("DoseSummationType", "")) or None,
            "dose_type": str(ds.get("DoseType", "")) or None,
            "dose_units": "GY",
            "series_uid": str(ds.get("SeriesInstanceUID", "")) or None,
            "sop_instance_uid": str(ds.get("SOPInstanceUID", "")) or None,
        },
    )


def _frames(ds, path: Path) -> np.ndarray:
    frames = _frame_count(ds, path)
    pixels = pixel_array(ds, path)
    if pixels.ndim == 2 and frames == 1:
        pixels = pixels[np.newaxis]
    if pixels.ndim != 3 or pixels.shape[0] != frames:
        raise InputError(f"pixel data of shape {pixels.shape} does not match NumberOfFrames {frames}", path)
    return pixels


def _frame_count(ds, path: Path) -> int:
    value = ds.get("NumberOfFrames", 1) or 1
    try:
        return int(value)
    except (TypeError, ValueError):
        raise InputError(f"NumberOfFrames {value!r} is not a whole number", path) from None


def _check_values(dose: np.ndarray, path: Path) -> None:
    if not np.all(np.isfinite(dose)):
        raise InputError(f"dose contains {int(np.sum(~np.isfinite(dose)))} NaN or infinite values", path)
    if not np.any(dose):
        raise InputError("dose is zero everywhere", path)


def _frame_offsets(ds, frames: int, ipp: np.ndarray, normal: np.ndarray, path: Path) -> np.ndarray:
    """Frame positions along the slice normal relative to ImagePositionPatient (mm).

    GridFrameOffsetVector is relative when its first value is 0, otherwise it holds the
    absolute position of each plane along the normal (z for axial doses).
    """
    if frames == 1 and ds.get("GridFrameOffsetVector") is None:
        return np.zeros(1)
    offsets = floats(ds, "GridFrameOffsetVector", path)
    if frames == 1 and "NumberOfFrames" not in ds:
        offsets = offsets[:1]  # a single-frame dose may keep the offsets of the grid it came from
    if offsets.size != frames:
        raise InputError(f"GridFrameOffsetVector has {offsets.size} values for {frames} frames", path)
    if offsets[0] == 0:
        return offsets
    first = float(np.dot(ipp, normal))
    if abs(offsets[0] - first) > 1e-3:
        raise InputError(
            f"GridFrameOffsetVector starts at {offsets[0]:g}, neither 0 (relative) nor the first "
            f"frame's position {first:g} mm (absolute)",
            path,
        )
    return offsets - first


def _slice_spacing(ds, offsets: np.ndarray, path: Path) -> float:
    if offsets.size == 1:
        return float(floats(ds, "SliceThickness", path, 1, default=1.0)[0])
    steps = np.diff(offsets)
    if steps.min() <= 0 or steps.max() - steps.min() > 1e-3 * max(1.0, steps.mean()):
        raise InputError(f"dose frames are not evenly spaced (steps {steps.min():g} to {steps.max():g} mm)", path)
    return float(steps.mean())
