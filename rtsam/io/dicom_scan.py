"""Which files of a folder are slices of a CT/MR/PET image series: headers read with pydicom
(no pixel data), every other file left out with its reason, never an exception."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError
from .dicom import NON_IMAGE_MODALITIES, floats, is_dicom_file, orientation, read_dataset

log = logging.getLogger("rtsam.io")

# Multi-frame image storage classes whose frames carry their own positions (per-frame functional groups).
ENHANCED_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.2.1": "Enhanced CT",
    "1.2.840.10008.5.1.4.1.1.2.2": "Legacy Converted Enhanced CT",
    "1.2.840.10008.5.1.4.1.1.4.1": "Enhanced MR",
    "1.2.840.10008.5.1.4.1.1.4.4": "Legacy Converted Enhanced MR",
    "1.2.840.10008.5.1.4.1.1.128.1": "Legacy Converted Enhanced PET",
    "1.2.840.10008.5.1.4.1.1.130": "Enhanced PET",
}
DICOMDIR_CLASS = "1.2.840.10008.1.3.10"


@dataclass
class Slice:
    path: Path
    header: object  # pydicom Dataset without pixel data


@dataclass
class Scan:
    slices: list[Slice] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)  # (file, why it was left out)

    def warn_skipped(self) -> None:
        """One warning per left-out file (CLI stderr, Slicer log)."""
        for path, reason in self.skipped:
            log.warning("%s: left out: %s", path, reason)


def scan_folder(folder: Path, recursive: bool = False) -> Scan:
    """Classify every file of ``folder`` (and its sub-folders when ``recursive``); hidden files are ignored."""
    pattern = folder.rglob("*") if recursive else folder.iterdir()
    scan = Scan()
    for path in sorted(p for p in pattern if p.is_file() and not p.name.startswith(".")):
        header, reason = classify(path)
        if header is None:
            scan.skipped.append((path, reason))
        else:
            scan.slices.append(Slice(path, header))
    return scan


def classify(path: Path) -> tuple[object | None, str]:
    """(header, "") for a slice of an image series, else (None, why not)."""
    try:
        if not is_dicom_file(path):
            return None, "is not a DICOM file (no DICM preamble)"
        header = read_dataset(path, header_only=True)
    except (InputError, OSError) as error:
        return None, str(error).removeprefix(f"{path}: ")
    reason = _not_a_slice(header, path)
    return (None, reason) if reason else (header, "")


def _not_a_slice(header, path: Path) -> str:
    sop_class = str(header.get("SOPClassUID", "") or header.get("file_meta", {}).get("MediaStorageSOPClassUID", ""))
    modality = str(header.get("Modality", "")).upper()
    if sop_class == DICOMDIR_CLASS:
        return "is a DICOMDIR (an index of files), not an image"
    name = _class_name(sop_class)
    if modality in NON_IMAGE_MODALITIES:
        return f"is a DICOM {modality} file, not an image"
    if "Rows" not in header:
        return f"is {_article(name)} without image pixel data"
    if int(header.get("SamplesPerPixel", 1) or 1) != 1:
        return f"is a colour {name} ({header.SamplesPerPixel} samples per pixel), not a CT/MR/PET image"
    if sop_class in ENHANCED_CLASSES:
        return ""
    if frame_count(header) != 1:
        return f"is a multi-frame {name} without a position per frame, not a CT/MR/PET slice"
    missing = [k for k in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing") if header.get(k) is None]
    if missing:
        return f"is {_article(name)} without {' and '.join(missing)}: it cannot be placed in 3D"
    try:
        orientation(header, path)
        floats(header, "ImagePositionPatient", path, 3)
        if np.any(floats(header, "PixelSpacing", path, 2) <= 0):
            return f"has PixelSpacing {header.PixelSpacing}, not two positive numbers"
        rescale(header)  # numbers, or the slice is left out
        if min(int(header.Rows), int(header.Columns)) < 1:
            return "has no pixels (Rows or Columns is 0)"
    except (InputError, ValueError, TypeError) as error:
        return str(error).removeprefix(f"{path}: ")
    return ""


def rescale(header) -> tuple[float, float]:
    """(RescaleSlope, RescaleIntercept), (1, 0) when absent."""
    return float(header.get("RescaleSlope", 1) or 1), float(header.get("RescaleIntercept", 0) or 0)


def frame_count(header) -> int:
    """NumberOfFrames (1 when absent, -1 when unreadable)."""
    try:
        return int(header.get("NumberOfFrames", 1) or 1)
    except (TypeError, ValueError):
        return -1


def _class_name(sop_class: str) -> str:
    from pydicom.uid import UID

    name = UID(sop_class).name if sop_class else ""
    return name.removesuffix(" Storage") if name and name != sop_class else "DICOM file"


def _article(name: str) -> str:
    return f"{'an' if name[0].upper() in 'AEIOU' else 'a'} {name}"
