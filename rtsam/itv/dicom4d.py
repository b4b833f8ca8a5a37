"""4DCT as DICOM: one folder holding all phases, split into phases and ordered by phase.

Scanners store a 4DCT either as one series per phase (phase in SeriesDescription "xx%" or a
tag) or as one series whose slices repeat per phase, told apart by a phase or trigger tag.
"""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import datetime
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..io.dicom_scan import Slice, scan_folder
from ..io.pydicom_compat import save_dicom
from ..io.stack import read_stack
from ..volume import Volume

# Per-slice tags that tell phases apart, most specific first.
PHASE_TAGS = ("NominalPercentageOfRespiratoryPhase", "TemporalPositionIndex", "TemporalPositionIdentifier", "TriggerTime")
PERCENT = re.compile(r"(\d+(?:\.\d+)?)\s*%")
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
STUDY_KEYWORDS = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyInstanceUID", "StudyDate",
                  "StudyTime", "StudyID", "AccessionNumber", "ReferringPhysicianName", "FrameOfReferenceUID",
                  "PositionReferenceIndicator", "PatientPosition")


def read_dicom_phases(folder: str | Path) -> tuple[list[Volume], list[float]]:
    """All phases of a DICOM folder (searched recursively), ordered by phase value."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError("DICOM folder not found", folder)
    scan = scan_folder(folder, recursive=True)
    if not scan.slices:
        raise InputError("no DICOM image slices found in this folder", folder)
    scan.warn_skipped()
    series = defaultdict(list)
    for item in scan.slices:
        series[str(item.header.get("SeriesInstanceUID", ""))].append((item.path, item.header))
    groups = _split(list(series.values()), folder)
    values = [value for value, _ in groups]
    if len(set(values)) != len(values):
        dup = sorted({v for v in values if values.count(v) > 1})
        raise InputError(f"duplicate phase values {dup} in the DICOM folder", folder)
    groups.sort(key=lambda g: g[0])
    return [_read_group(files, value, folder) for value, files in groups], [v for v, _ in groups]


def _split(series: list[list], folder: Path) -> list[tuple[float, list]]:
    """(phase value, slices) per phase: one series per phase, or one series split by a tag."""
    if len(series) > 1:
        return [(_series_value(files, folder), files) for files in series]
    files = series[0]
    for tag in PHASE_TAGS:
        values = [h.get(tag) for _, h in files]
        if all(v is not None for v in values) and len(set(map(float, values))) > 1:
            groups = defaultdict(list)
            for value, item in zip(values, files):
                groups[float(value)].append(item)
            return list(groups.items())
    raise InputError(
        "only one DICOM series and no phase tag (" + ", ".join(PHASE_TAGS) + ") that varies; is this a 4DCT?", folder
    )


def _series_value(files: list, folder: Path) -> float:
    header = files[0][1]
    if header.get("NominalPercentageOfRespiratoryPhase") is not None:
        return float(header.NominalPercentageOfRespiratoryPhase)
    match = PERCENT.search(str(header.get("SeriesDescription", "")))
    if match:
        return float(match.group(1))
    for tag in PHASE_TAGS[1:] + ("SeriesNumber",):
        if header.get(tag) is not None:
            return float(header.get(tag))
    raise InputError(f"series {header.get('SeriesInstanceUID')} has no phase: no 'xx%' in its description, "
                     "no phase tag and no series number", folder)


def _read_group(files: list, value: float, folder: Path) -> Volume:
    volume = read_stack([Slice(path, header) for path, header in files], f"phase {value:g}", folder)
    header = files[0][1]
    volume.frame_of_reference_uid = str(header.get("FrameOfReferenceUID", "")) or None
    volume.metadata.update(path=str(folder), modality=str(header.get("Modality", "")) or None)
    return volume


def write_dicom_phases(volumes: list[Volume], folder: str | Path, values: list[float], one_series: bool = False,
                       like=None) -> Path:
    """Write phases as CT slices: a series per phase ("xx%" in the description), or one series
    with NominalPercentageOfRespiratoryPhase per slice when ``one_series``. ``like``: a dataset
    whose patient, study and frame of reference the slices join (default: new ones)."""
    from pydicom.uid import generate_uid

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    study = _study_header(like)
    shared_series = generate_uid()
    for n, (volume, value) in enumerate(zip(volumes, values)):
        series = shared_series if one_series else generate_uid()
        description = "4DCT" if one_series else f"4DCT {value:g}%"
        for k in range(volume.array.shape[0]):
            ds = _slice_dataset(volume, k, study, series, description)
            ds.SeriesNumber = 1 if one_series else n + 1
            ds.InstanceNumber = n * volume.array.shape[0] + k + 1
            if one_series:
                ds.NominalPercentageOfRespiratoryPhase = float(value)
            save_dicom(ds, folder / f"phase{n:02d}_slice{k:04d}.dcm")
    return folder


def _study_header(like=None):
    """Patient, study, frame of reference and equipment shared by every slice (the CT Image IOD's
    type 1 and 2 attributes; unknown ones present and empty), those of ``like`` when given."""
    from pydicom.dataset import Dataset
    from pydicom.uid import generate_uid

    from .. import __version__

    now = datetime.now()
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = "Synthetic^4DCT", "RTSAM4DCT", "", "O"
    ds.StudyInstanceUID, ds.StudyDate, ds.StudyTime = generate_uid(), now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    ds.StudyID, ds.AccessionNumber, ds.ReferringPhysicianName = "RTSAM", "", ""
    ds.FrameOfReferenceUID, ds.PositionReferenceIndicator = generate_uid(), ""
    ds.Modality, ds.Laterality, ds.PatientPosition = "CT", "", "HFS"
    ds.Manufacturer, ds.ManufacturerModelName, ds.SoftwareVersions = "SlicerRTSAM", "rtsam", __version__
    ds.ImageType = ["DERIVED", "SECONDARY", "AXIAL"]  # resampled or synthetic, not as scanned
    ds.AcquisitionNumber, ds.KVP = 1, ""
    for keyword in STUDY_KEYWORDS:
        if like is not None and like.get(keyword) is not None:
            setattr(ds, keyword, like.get(keyword))
    return ds


def _slice_dataset(volume: Volume, k: int, study, series: str, description: str):
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    pixels = volume.array[k]
    if pixels.min() < -32768 or pixels.max() > 32767:
        raise InputError("CT values outside the int16 range cannot be written as DICOM")
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = CT_IMAGE_STORAGE, generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = study.copy()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = CT_IMAGE_STORAGE, meta.MediaStorageSOPInstanceUID
    ds.SeriesInstanceUID = series
    ds.SeriesDescription = description
    ds.ImagePositionPatient = [f"{v:.6f}" for v in volume.ijk_to_lps([0, 0, k])]
    ds.ImageOrientationPatient = [f"{v:.8f}" for v in np.concatenate([volume.direction[:, 0], volume.direction[:, 1]])]
    ds.PixelSpacing = [f"{volume.spacing[1]:.6f}", f"{volume.spacing[0]:.6f}"]
    ds.SliceThickness = f"{volume.spacing[2]:.6f}"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.RescaleIntercept, ds.RescaleSlope = 0, 1
    ds.PixelData = np.ascontiguousarray(pixels.astype("<i2")).tobytes()
    return ds
