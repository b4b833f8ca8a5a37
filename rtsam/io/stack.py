"""One stack of DICOM slices (or one enhanced multi-frame file) -> a Volume in LPS mm.

SimpleITK (GDCM) reads the explicit, position-sorted file list; when it cannot, or when the slices
rescale differently, pydicom decodes each slice (pylibjpeg, pyjpegls plugins) and names the file
it cannot decode.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputError
from ..volume import Volume
from .dicom import floats, orientation, pixel_array, read_dataset, require
from .dicom_scan import Slice, frame_count, rescale


def read_stack(slices: list[Slice], uid: str, folder: Path, hint: str = "") -> Volume:
    """Read single-frame slices sorted along the slice normal; ``hint`` ends the uneven-gaps error."""
    direction = orientation(slices[0].header, slices[0].path)
    along = np.array([floats(s.header, "ImagePositionPatient", s.path, 3) @ direction[:, 2] for s in slices])
    order = np.argsort(along, kind="stable")
    slices, along = [slices[i] for i in order], along[order]
    _check_steps(np.diff(along), [s.path.name for s in slices], folder,
                 "duplicate slices, or several acquisitions in one series?", hint)
    volume = None
    if len({rescale(s.header) for s in slices}) == 1:
        volume = _read_sitk([str(s.path) for s in slices])
    if volume is None:
        volume = _read_pydicom(slices, direction, along, uid)
    volume.metadata["files"] = [str(s.path) for s in slices]  # slice files in k order
    return volume


def read_enhanced(item: Slice) -> Volume:
    """An enhanced (or legacy converted) multi-frame CT/MR/PET file: one frame per position."""
    ds = read_dataset(item.path)
    frames = pixel_array(ds, item.path)
    frames = frames[np.newaxis] if frames.ndim == 2 else frames
    if frames.ndim != 3 or frames.shape[0] != frame_count(ds):
        raise InputError(f"pixel data of shape {frames.shape} does not match NumberOfFrames {ds.NumberOfFrames}",
                         item.path)
    try:
        groups = [_FrameGroups(ds, n, item.path) for n in range(frames.shape[0])]
    except (ValueError, TypeError, IndexError) as error:
        raise InputError(f"functional groups hold values that are not numbers ({error})", item.path) from None
    direction = _same(groups, "orientation", item.path)
    pixel_spacing = _same(groups, "pixel_spacing", item.path)
    along = np.array([g.position @ direction[:, 2] for g in groups])
    order = np.argsort(along, kind="stable")
    _check_steps(np.diff(along[order]), [f"frame {n + 1}" for n in order], item.path,
                 "several stacks or time points in one file are not supported")
    volume = _assemble([frames[n] for n in order], [groups[n].rescale for n in order], groups[order[0]].position,
                       direction, pixel_spacing, along[order], ds, item.path)
    volume.metadata["files"] = [str(item.path)]
    return volume


class _FrameGroups:
    """The functional group values of one frame (per-frame, else shared)."""

    def __init__(self, ds, n: int, path: Path):
        shared = ds.get("SharedFunctionalGroupsSequence", [None])[0]
        per_frame = ds.get("PerFrameFunctionalGroupsSequence") or []
        self._groups = [g for g in (per_frame[n] if n < len(per_frame) else None, shared) if g is not None]
        self.path = path
        self.position = np.asarray(self._value("PlanePositionSequence", "ImagePositionPatient", n), dtype=float)
        self.orientation = orientation(self._item("PlaneOrientationSequence", n), path)
        self.pixel_spacing = tuple(float(v) for v in self._value("PixelMeasuresSequence", "PixelSpacing", n))
        transform = self._item("PixelValueTransformationSequence", n, required=False)
        self.rescale = rescale(transform) if transform is not None else (1.0, 0.0)

    def _item(self, sequence: str, n: int, required: bool = True):
        for group in self._groups:
            if group.get(sequence):
                return group.get(sequence)[0]
        if required:
            raise InputError(f"frame {n + 1} has no {sequence} (per-frame or shared functional group)", self.path)
        return None

    def _value(self, sequence: str, keyword: str, n: int):
        return require(self._item(sequence, n), keyword, f"{self.path} (frame {n + 1})")


def _same(groups: list[_FrameGroups], name: str, path: Path):
    first = np.asarray(getattr(groups[0], name), dtype=float)
    for n, group in enumerate(groups):
        if not np.allclose(getattr(group, name), first, atol=1e-4):
            raise InputError(f"frame {n + 1} has another {name.replace('_', ' ')} than frame 1 "
                             "(several stacks in one file are not supported)", path)
    return first


def _check_steps(steps: np.ndarray, names: list[str], where: Path, shared: str, hint: str = "") -> None:
    """Slices must not share a position (``shared`` says why they might) and must be evenly spaced."""
    if steps.size == 0:
        return
    if steps.min() < 1e-3:
        n = int(np.argmin(steps))
        raise InputError(f"{names[n]} and {names[n + 1]} lie at one position ({shared})", where)
    if steps.max() - steps.min() > max(1e-2, 0.01 * steps.mean()):
        raise InputError(f"slices are not evenly spaced (gaps {steps.min():.3g} to {steps.max():.3g} mm): "
                         f"missing slices?{hint}", where)


def _read_sitk(files: list[str]) -> Volume | None:
    """The series as read by SimpleITK/GDCM; None when GDCM cannot read one of the files."""
    import SimpleITK as sitk

    reader = sitk.ImageSeriesReader()
    reader.SetImageIO("GDCMImageIO")
    reader.SetFileNames(files)
    shown = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)  # GDCM's multi-line warnings are not for users
    try:
        image = reader.Execute()
    except RuntimeError:
        return None
    finally:
        sitk.ProcessObject.SetGlobalWarningDisplay(shown)
    if image.GetNumberOfComponentsPerPixel() != 1:
        return None
    return Volume.from_sitk(image)


def _read_pydicom(slices: list[Slice], direction: np.ndarray, along: np.ndarray, uid: str) -> Volume:
    frames = []
    for item in slices:
        try:
            ds = read_dataset(item.path)
            frame = pixel_array(ds, item.path)
        except InputError as error:
            reason = str(error).removeprefix(f"{item.path}: ")
            raise InputError(f"cannot read this slice of series {uid} (truncated or corrupt file?): {reason}",
                             item.path) from None
        if frame.shape != (int(ds.Rows), int(ds.Columns)):
            raise InputError(f"pixel data of shape {frame.shape} is not one {ds.Rows}x{ds.Columns} slice", item.path)
        frames.append(frame)
    first = slices[0].header
    return _assemble(frames, [rescale(s.header) for s in slices], floats(first, "ImagePositionPatient", slices[0].path),
                     direction, floats(first, "PixelSpacing", slices[0].path), along, first, slices[0].path)


def _assemble(frames, rescales, origin, direction, pixel_spacing, along, header, path) -> Volume:
    """Stack frames in k order with their modality rescale (integers stay integers, like GDCM)."""
    integral = all(float(s).is_integer() and float(b).is_integer() for s, b in rescales)
    dtype = np.int32 if integral else np.float32
    if all(r == (1.0, 0.0) for r in rescales):
        dtype = np.result_type(*[f.dtype.newbyteorder("=") for f in frames])
    array = np.stack([f.astype(np.float64) * s + b if (s, b) != (1.0, 0.0) else f for f, (s, b) in zip(frames, rescales)])
    steps = np.diff(along)
    slice_spacing = float(steps.mean()) if steps.size else floats(header, "SliceThickness", path, 1, default=1.0)[0]
    row_spacing, col_spacing = pixel_spacing
    return Volume(array.astype(dtype), spacing=(col_spacing, row_spacing, slice_spacing), origin=tuple(origin),
                  direction=direction, metadata={"path": str(path)})
