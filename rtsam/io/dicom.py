"""Reading single DICOM files with pydicom, with one clear error per problem."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from ..errors import InputError

# Modalities that are not image series (RT objects, reports, segmentations, registrations).
NON_IMAGE_MODALITIES = {"RTDOSE", "RTSTRUCT", "RTPLAN", "RTRECORD", "RTIMAGE", "SR", "PR", "SEG", "REG", "KO"}


def check_file(path: str | Path) -> Path:
    """The path as a Path; InputError when it is missing or a folder."""
    path = Path(path)
    if not path.exists():
        raise InputError("file not found", path)
    if path.is_dir():
        raise InputError("is a folder, expected a file", path)
    return path


def is_dicom_file(path: str | Path) -> bool:
    """True when the file has the DICOM preamble ("DICM" at byte 128)."""
    with open(path, "rb") as handle:
        return handle.read(132)[128:132] == b"DICM"


def dicom_modality(path: str | Path) -> str:
    """The file's DICOM Modality in upper case; "" for a file that is not DICOM or names none."""
    if not is_dicom_file(path):
        return ""
    return str(read_dataset(path, header_only=True).get("Modality", "")).upper()


def read_dataset(path: str | Path, expected_modality: str | tuple[str, ...] | None = None, header_only: bool = False):
    """Read one DICOM file; InputError when missing, not DICOM, unreadable or of another modality."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    path = check_file(path)
    try:
        with warnings.catch_warnings():  # pydicom's notes on odd encodings (the file is read anyway)
            warnings.simplefilter("ignore")
            dataset = pydicom.dcmread(path, stop_before_pixels=header_only)
    except InvalidDicomError:
        raise InputError("not a DICOM file (no DICM preamble)", path) from None
    except Exception as error:  # pydicom raises many types on truncated or corrupt files
        raise InputError(f"cannot read DICOM file, it may be truncated or corrupt ({_first_line(error)})", path) from None
    if expected_modality is not None:
        expected = (expected_modality,) if isinstance(expected_modality, str) else tuple(expected_modality)
        modality = str(dataset.get("Modality", "")).upper()
        if modality not in expected:
            found = f"a DICOM {modality} file" if modality else "a DICOM file without a Modality"
            raise InputError(f"is {found}, expected {' or '.join(expected)}", path)
    return dataset


def require(dataset, keyword: str, path: str | Path):
    """The value of a required attribute; InputError naming it when absent."""
    value = dataset.get(keyword)
    if value is None or (hasattr(value, "__len__") and len(value) == 0):
        raise InputError(f"required DICOM attribute {keyword} is missing", path)
    return value


def floats(dataset, keyword: str, path: str | Path, count: int | None = None, default=None) -> np.ndarray:
    """A numeric attribute as float array (``count`` values when given); InputError when absent or not numbers."""
    value = dataset.get(keyword) if default is None else (dataset.get(keyword) or default)
    if value is None or value == "":
        raise InputError(f"required DICOM attribute {keyword} is missing", path)
    try:
        values = np.array(_float_list(value))
    except (TypeError, ValueError):
        raise InputError(f"{keyword} {value!r} is not a number or list of numbers", path) from None
    if (count is not None and values.size != count) or not np.all(np.isfinite(values)):
        need = f"{count} finite numbers" if count and count > 1 else ("a finite number" if count else "finite numbers")
        raise InputError(f"{keyword} must hold {need}, got {value}", path)
    return values


def pixel_array(dataset, path: str | Path) -> np.ndarray:
    """The decoded pixel data; InputError when it is missing, truncated or compressed without a decoder."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return dataset.pixel_array
    except Exception as error:
        raise InputError(f"cannot decode pixel data ({_first_line(error)})", path) from None


def orientation(dataset, path: str | Path) -> np.ndarray:
    """3x3 direction matrix (row, column, normal as columns) from ImageOrientationPatient."""
    try:
        values = np.array(_float_list(require(dataset, "ImageOrientationPatient", path)))
    except (TypeError, ValueError):
        values = np.full(1, np.nan)
    if values.shape != (6,) or not np.all(np.isfinite(values)):
        raise InputError(f"ImageOrientationPatient must hold 6 numbers, got {values.tolist()}", path)
    row, col = values[:3], values[3:]
    norms = np.linalg.norm(row), np.linalg.norm(col)
    if min(norms) < 1e-6 or abs(np.dot(row, col)) > 1e-3 * norms[0] * norms[1]:
        raise InputError(f"ImageOrientationPatient {values.tolist()} is not two orthogonal vectors", path)
    row, col = row / norms[0], col / norms[1]
    return np.column_stack([row, col, np.cross(row, col)])


def _float_list(value) -> list[float]:
    """float() of each item (much faster than numpy on pydicom's multi-values)."""
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        return [float(value)]
    return [float(v) for v in value]


def _first_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
