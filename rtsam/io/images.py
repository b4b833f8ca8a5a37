"""Image files (NIfTI, NRRD, MHA) and DICOM folders in, NRRD/NIfTI/MHA out."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputError
from ..volume import Volume
from .dicom import is_dicom_file
from .dicom_scan import classify
from .files import write_atomically
from .series import read_series

WRITE_SUFFIXES = (".nrrd", ".nii", ".nii.gz", ".mha")  # single-file formats: renamed atomically
READ_SUFFIXES = WRITE_SUFFIXES + (".nhdr", ".mhd")


def _suffix(path: Path) -> str:
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix.lower()


def read_image(path: str | Path, series_uid: str | None = None) -> Volume:
    """Read a NIfTI/NRRD/MHA file, a DICOM CT/MR folder, or the series of one DICOM slice file."""
    path = Path(path)
    if not path.exists():
        raise InputError("file or folder not found", path)
    if path.is_dir():
        return read_series(path, series_uid)
    if is_dicom_file(path):
        header, reason = classify(path)
        if header is None:
            raise InputError(reason, path)
        return read_series(path.parent, series_uid or str(header.get("SeriesInstanceUID", "")), chosen_file=path)
    if _suffix(path) == ".dcm":
        raise InputError("is not a DICOM file (no DICM preamble)", path)
    if _suffix(path) not in READ_SUFFIXES:
        raise InputError(f"unsupported image format {_suffix(path) or '(no extension)'}; use NIfTI, NRRD, MHA or DICOM", path)
    return _read_itk(path)


def _read_itk(path: Path) -> Volume:
    import SimpleITK as sitk

    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as error:
        lines = [ln.strip() for ln in str(error).splitlines() if ln.strip()]
        raise InputError(f"cannot read image ({lines[-1] if lines else 'unknown error'})", path) from None
    if image.GetDimension() == 2:
        image = sitk.JoinSeries(image)
    return Volume.from_sitk(image, metadata={"path": str(path), "modality": None})


def write_image(volume: Volume, path: str | Path) -> Path:
    """Write NRRD/NIfTI/MHA atomically (temp file, then rename); bool masks become uint8."""
    import SimpleITK as sitk

    path = Path(path)
    suffix = _suffix(path)
    if suffix not in WRITE_SUFFIXES:
        raise InputError(f"cannot write {suffix or '(no extension)'}; use .nrrd, .nii, .nii.gz or .mha", path)
    array = volume.array.astype(np.uint8) if volume.array.dtype == bool else volume.array
    image = volume.with_array(array).to_sitk()
    try:
        return write_atomically(path, lambda temp: sitk.WriteImage(image, temp, useCompression=True), suffix)
    except InputError:
        raise
    except Exception as error:
        raise InputError(f"cannot write image ({str(error).strip().splitlines()[-1]})", path) from None
