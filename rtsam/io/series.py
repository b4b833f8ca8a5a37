"""DICOM CT/MR series from a folder: GDCM finds the series, slices are sorted by position."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..volume import Volume
from .dicom import NON_IMAGE_MODALITIES, is_dicom_file, orientation, read_dataset


@dataclass
class SeriesInfo:
    uid: str
    files: list[str]
    modality: str
    description: str

    def summary(self) -> str:
        return f"{self.uid} ({self.modality}, {self.description or 'no description'}, {len(self.files)} slices)"


def list_series(folder: str | Path) -> list[SeriesInfo]:
    """The image series of a folder (RT objects and other non-image DICOM left out)."""
    import SimpleITK as sitk

    folder = str(folder)
    found = []
    for uid in sitk.ImageSeriesReader.GetGDCMSeriesIDs(folder):
        files = list(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(folder, uid))
        header = read_dataset(files[0], header_only=True)
        modality = str(header.get("Modality", "")).upper()
        if modality in NON_IMAGE_MODALITIES or "Rows" not in header:
            continue
        found.append(SeriesInfo(uid, files, modality, str(header.get("SeriesDescription", ""))))
    return found


def read_series(folder: str | Path, series_uid: str | None = None) -> Volume:
    """Read one CT/MR series of a folder; several series need ``series_uid``."""
    folder = Path(folder)
    series = list_series(folder)
    if not series:
        raise InputError("no DICOM image series found in this folder", folder)
    if series_uid is not None:
        chosen = [s for s in series if s.uid == series_uid]
        if not chosen:
            raise InputError(f"series {series_uid} not found; available: " + "; ".join(s.summary() for s in series), folder)
        info = chosen[0]
    elif len(series) > 1:
        raise InputError(
            f"{len(series)} image series found, choose one by series UID: " + "; ".join(s.summary() for s in series), folder
        )
    else:
        info = series[0]
    return _read_sorted(folder, info)


def _read_sorted(folder: Path, info: SeriesInfo) -> Volume:
    import SimpleITK as sitk

    headers = [read_dataset(f, header_only=True) for f in info.files]
    direction = orientation(headers[0], info.files[0])
    positions = np.array([_position(h, f) for h, f in zip(headers, info.files)])
    along = positions @ direction[:, 2]
    order = np.argsort(along, kind="stable")
    _check_spacing(np.diff(along[order]), folder, info)

    reader = sitk.ImageSeriesReader()
    reader.SetFileNames([info.files[i] for i in order])
    try:
        image = reader.Execute()
    except RuntimeError as error:
        raise InputError(f"cannot read DICOM series {info.uid}: {str(error).strip().splitlines()[-1]}", folder) from None
    first = headers[order[0]]
    return Volume.from_sitk(
        image,
        frame_of_reference_uid=str(first.get("FrameOfReferenceUID", "")) or None,
        metadata={
            "path": str(folder),
            "modality": info.modality,
            "series_uid": info.uid,
            "series_description": info.description,
            "files": [info.files[i] for i in order],  # slice files in k order
        },
    )


def _position(header, path: str) -> np.ndarray:
    value = header.get("ImagePositionPatient")
    if value is None or len(value) != 3:
        raise InputError("slice without ImagePositionPatient", path)
    return np.asarray(value, dtype=float)


def _check_spacing(steps: np.ndarray, folder: Path, info: SeriesInfo) -> None:
    if steps.size == 0:
        return
    if steps.min() < 1e-3:
        raise InputError("two slices of the series share one position (duplicate slices?)", folder)
    if steps.max() - steps.min() > max(1e-2, 0.01 * steps.mean()):
        dropped = _dropped_files(folder, info)
        if dropped:
            more = f" (and {len(dropped) - 1} more)" if len(dropped) > 1 else ""
            raise InputError(f"cannot read this slice of series {info.uid} (truncated or corrupt file?){more}", dropped[0])
        raise InputError(
            f"slices are not evenly spaced (gaps {steps.min():.3g} to {steps.max():.3g} mm): missing slices?", folder
        )


def _dropped_files(folder: Path, info: SeriesInfo) -> list[Path]:
    """DICOM files of the series (or without a series UID: cut short) that GDCM left out, as it
    skips files it cannot parse."""
    listed = {Path(f).resolve() for f in info.files}
    dropped = []
    for path in sorted(p for p in folder.iterdir() if p.is_file() and p.resolve() not in listed):
        if not is_dicom_file(path):
            continue
        if str(read_dataset(path, header_only=True).get("SeriesInstanceUID", "")) in ("", info.uid):
            dropped.append(path)
    return dropped
