"""Masks -> DICOM SEG (highdicom) or RTSTRUCT (pydicom), referencing the image series they lie on.

Every mask must be on the grid of the reference series (same size, spacing, origin and
direction); its nonzero voxels are the segment. Patient, study and frame of reference are
copied from the series. RTSTRUCT contours follow the voxel edges (see contours.py), so a
reader filling them with the even-odd rule at voxel centres gets the mask back exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

import numpy as np

from .. import __version__
from ..errors import GeometryError, InputError
from ..presets import ALTERED_STRUCTURE, preset_for
from ..volume import Volume
from .contours import mask_contours
from .dicom import read_dataset, require
from .files import write_atomically
from .pydicom_compat import save_dicom
from .images import read_image

GENERIC_TYPE = "SCT^52988006^Lesion"
PALETTE = ((1.0, 0.85, 0.0), (0.2, 0.8, 0.2), (0.2, 0.6, 1.0), (0.9, 0.3, 0.9), (1.0, 0.5, 0.2))
ALGORITHM_TYPES = ("AUTOMATIC", "SEMIAUTOMATIC")
RTSTRUCT_STORAGE = "1.2.840.10008.5.1.4.1.1.481.3"
STUDY_REFERENCE_CLASS = "1.2.840.10008.3.1.2.3.1"  # conventional ReferencedSOPClassUID of a study
MANUFACTURER, MODEL = "SlicerRTSAM", "rtsam"
SERIES_NUMBER = 100
SPACING_TOLERANCE_MM, ORIGIN_TOLERANCE_MM, DIRECTION_TOLERANCE = 1e-3, 1e-2, 1e-4
PATIENT_STUDY = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyInstanceUID", "StudyDate",
                 "StudyTime", "StudyID", "AccessionNumber", "ReferringPhysicianName", "StudyDescription")


@dataclass
class Algorithm:
    """The program that made a segment: engine name, weights label or version, how it ran."""

    name: str
    version: str = ""
    type: str = "SEMIAUTOMATIC"  # AUTOMATIC without user prompts

    def __post_init__(self):
        if self.type not in ALGORITHM_TYPES:
            raise InputError(f"algorithm type must be {' or '.join(ALGORITHM_TYPES)}, got {self.type!r}")


@dataclass
class ExportSegment:
    """One segment to export; codes are "scheme^code^meaning", unset fields come from the
    preset of that name (rtsam.presets) or generic lesion codes."""

    name: str
    mask: Volume
    color: tuple[float, float, float] | None = None  # RGB 0-1
    category_code: str | None = None
    type_code: str | None = None
    region_code: str | None = None
    algorithm: Algorithm | None = None  # None: the writer's algorithm; none at all: MANUAL


@dataclass
class ReferenceSeries:
    volume: Volume
    datasets: list  # slice headers, index k of the volume
    path: str

    @property
    def frame_of_reference_uid(self) -> str:
        return str(require(self.datasets[0], "FrameOfReferenceUID", self.volume.metadata["files"][0]))


def read_reference(path: str | Path, series_uid: str | None = None) -> ReferenceSeries:
    """The image series of a DICOM folder (or of one of its slice files) with its slice headers."""
    return reference_of(read_image(path, series_uid), path)


def reference_of(volume: Volume, path: str | Path | None = None) -> ReferenceSeries:
    """The series of a volume read from DICOM slices (``metadata["files"]`` in k order)."""
    path = path or volume.metadata.get("path") or "reference volume"
    files = volume.metadata.get("files")
    if not files:
        raise InputError("the reference must be a DICOM image series (a folder or one of its slice files)", path)
    datasets = [read_dataset(f, header_only=True) for f in files]
    if len(datasets) != volume.array.shape[0]:
        raise InputError("multi-frame reference images are not supported; use a series of single slices", path)
    positions = np.array([np.asarray(require(d, "ImagePositionPatient", f), float) for d, f in zip(datasets, files)])
    centres = volume.ijk_to_lps(np.column_stack([np.zeros((len(files), 2)), np.arange(len(files))]))
    if not np.allclose(positions, centres, atol=ORIGIN_TOLERANCE_MM):
        raise InputError("slice positions do not match the series geometry", path)
    return ReferenceSeries(volume, datasets, str(path))


def write_dicom_seg(segments, reference, path: str | Path, algorithm: Algorithm | None = None,
                    description: str = "RTSAM segmentation") -> Path:
    """A BINARY DICOM SEG of the segments on the reference series (frames of empty slices omitted)."""
    import highdicom as hd
    from pydicom.uid import generate_uid

    reference = as_reference(reference)
    items = _prepared(segments, reference, algorithm)
    pixels = np.stack([s.mask.array != 0 for s in items], axis=-1).astype(np.uint8)
    seg = hd.seg.Segmentation(
        source_images=[_with_patient_study(reference.datasets[0]), *reference.datasets[1:]],
        pixel_array=pixels,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[_segment_description(n, s) for n, s in enumerate(items, start=1)],
        series_instance_uid=generate_uid(),
        series_number=SERIES_NUMBER,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        manufacturer_model_name=MODEL,
        software_versions=__version__,
        device_serial_number="0",
        content_label="RTSAM",
        content_description=description[:64],
        series_description=description[:64],
    )
    return _save(seg, path)


def write_rtstruct(segments, reference, path: str | Path, algorithm: Algorithm | None = None,
                   label: str = "RTSAM") -> Path:
    """An RT Structure Set of the segments: closed planar contours along the voxel edges, each
    referencing its slice."""
    reference = as_reference(reference)
    items = _prepared(segments, reference, algorithm)
    frame = reference.frame_of_reference_uid
    ds = _rtstruct_header(reference, label)
    ds.ReferencedFrameOfReferenceSequence = [_referenced_frame(reference)]
    ds.StructureSetROISequence = [_structure_set_roi(n, s, frame) for n, s in enumerate(items, start=1)]
    ds.ROIContourSequence = [_roi_contour(n, s, reference) for n, s in enumerate(items, start=1)]
    ds.RTROIObservationsSequence = [_observation(n) for n in range(1, len(items) + 1)]
    return _save(ds, path)


# --- checks and defaults -----------------------------------------------------------------
def as_reference(reference) -> ReferenceSeries:
    """A ReferenceSeries from itself, a Volume read from DICOM slices, or a DICOM folder or slice file."""
    if isinstance(reference, ReferenceSeries):
        return reference
    return reference_of(reference) if isinstance(reference, Volume) else read_reference(reference)


def _prepared(segments, reference: ReferenceSeries, algorithm: Algorithm | None) -> list[ExportSegment]:
    """Segments as ExportSegments with defaults filled, each checked against the reference."""
    if isinstance(segments, dict):
        segments = list(segments.items())
    items = [s if isinstance(s, ExportSegment) else ExportSegment(*s) for s in segments]
    if not items:
        raise InputError("no segments to export")
    names = [s.name.strip() for s in items]
    for name in names:
        if not name or names.count(name) > 1:
            raise InputError(f"segment names must be unique and not empty, got {names}")
    filled = [_with_defaults(s, n, algorithm) for n, s in enumerate(items)]
    frame = reference.frame_of_reference_uid  # InputError when the series has none
    for segment in filled:
        _check_mask(segment, reference, frame)
    return filled


def _with_defaults(segment: ExportSegment, index: int, algorithm: Algorithm | None) -> ExportSegment:
    preset = preset_for(segment.name)
    default_color = preset.color if preset else PALETTE[index % len(PALETTE)]
    return replace(
        segment,
        name=segment.name.strip(),
        color=default_color if segment.color is None else tuple(segment.color),
        category_code=segment.category_code or (preset.category_code if preset else ALTERED_STRUCTURE),
        type_code=segment.type_code or (preset.type_code if preset else GENERIC_TYPE),
        region_code=segment.region_code or (preset.region_code if preset else None),
        algorithm=segment.algorithm or algorithm,
    )


def _check_mask(segment: ExportSegment, reference: ReferenceSeries, frame: str) -> None:
    """InputError naming the mask file (else the series) when the mask is off-grid or empty."""
    mask, grid = segment.mask, reference.volume
    where = mask.metadata.get("path") or reference.path
    mismatch = mask.grid_difference(grid, SPACING_TOLERANCE_MM, ORIGIN_TOLERANCE_MM, DIRECTION_TOLERANCE)
    if mismatch:
        raise InputError(f"mask {segment.name!r} is not on the grid of the reference series {reference.path} "
                         f"(mask {mismatch}); resample it onto the series first", where)
    if not np.any(mask.array):
        raise InputError(f"mask {segment.name!r} is empty", where)
    if mask.frame_of_reference_uid and mask.frame_of_reference_uid != frame:
        raise GeometryError(f"mask {segment.name!r} has frame of reference {mask.frame_of_reference_uid}, "
                            f"the reference series {frame}", where)


def _save(dataset, path: str | Path) -> Path:
    return write_atomically(path, lambda temp: save_dicom(dataset, temp), ".dcm")


def _with_patient_study(header):
    """A copy of a slice header with the (type 2) patient and study attributes it lacks set empty."""
    header = header.copy()
    for keyword in PATIENT_STUDY:
        if keyword not in header:
            setattr(header, keyword, "")
    return header


def _coded(text: str):
    import highdicom as hd

    parts = str(text).split("^")
    if len(parts) != 3 or not all(p.strip() for p in parts):
        raise InputError(f"a code must read scheme^code^meaning, got {text!r}")
    scheme, value, meaning = (p.strip() for p in parts)
    return hd.sr.CodedConcept(value=value, scheme_designator=scheme, meaning=meaning)


def _rgb255(color) -> list[int]:
    return [int(round(255 * min(max(float(c), 0.0), 1.0))) for c in color]


# --- DICOM SEG ---------------------------------------------------------------------------
def _segment_description(number: int, segment: ExportSegment):
    import highdicom as hd
    from pydicom.sr.codedict import codes

    algorithm = segment.algorithm
    identification = None if algorithm is None else hd.AlgorithmIdentificationSequence(
        name=algorithm.name[:64], family=codes.cid7162.ArtificialIntelligence,
        version=algorithm.version[:64] or "unknown")
    return hd.seg.SegmentDescription(
        segment_number=number,
        segment_label=segment.name[:64],
        segmented_property_category=_coded(segment.category_code),
        segmented_property_type=_coded(segment.type_code),
        algorithm_type=algorithm.type if algorithm else "MANUAL",
        algorithm_identification=identification,
        anatomic_regions=[_coded(segment.region_code)] if segment.region_code else None,
        display_color=hd.color.CIELabColor.from_rgb(*_rgb255(segment.color)),
    )


# --- RTSTRUCT ----------------------------------------------------------------------------
def _rtstruct_header(reference: ReferenceSeries, label: str):
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    first = reference.datasets[0]
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = RTSTRUCT_STORAGE, generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID, ds.SOPInstanceUID = RTSTRUCT_STORAGE, meta.MediaStorageSOPInstanceUID
    for keyword in PATIENT_STUDY:
        setattr(ds, keyword, first.get(keyword, ""))
    require(ds, "StudyInstanceUID", reference.volume.metadata["files"][0])
    now = datetime.now()
    date, time = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    ds.InstanceCreationDate, ds.InstanceCreationTime = date, time
    ds.FrameOfReferenceUID = reference.frame_of_reference_uid
    ds.PositionReferenceIndicator = first.get("PositionReferenceIndicator", "")
    ds.Modality, ds.SeriesInstanceUID, ds.SeriesNumber = "RTSTRUCT", generate_uid(), SERIES_NUMBER
    ds.SeriesDescription, ds.OperatorsName = f"{label} structures"[:64], ""
    ds.Manufacturer, ds.ManufacturerModelName, ds.SoftwareVersions = MANUFACTURER, MODEL, __version__
    ds.StructureSetLabel = label[:16]
    ds.StructureSetDate, ds.StructureSetTime = date, time
    return ds


def _image_reference(header):
    from pydicom.dataset import Dataset

    item = Dataset()
    item.ReferencedSOPClassUID, item.ReferencedSOPInstanceUID = header.SOPClassUID, header.SOPInstanceUID
    return item


def _referenced_frame(reference: ReferenceSeries):
    """Frame of reference -> study -> series -> every slice of the reference series."""
    from pydicom.dataset import Dataset

    first = reference.datasets[0]
    series = Dataset()
    series.SeriesInstanceUID = first.SeriesInstanceUID
    series.ContourImageSequence = [_image_reference(d) for d in reference.datasets]
    study = Dataset()
    study.ReferencedSOPClassUID, study.ReferencedSOPInstanceUID = STUDY_REFERENCE_CLASS, first.StudyInstanceUID
    study.RTReferencedSeriesSequence = [series]
    frame = Dataset()
    frame.FrameOfReferenceUID = reference.frame_of_reference_uid
    frame.RTReferencedStudySequence = [study]
    return frame


def _structure_set_roi(number: int, segment: ExportSegment, frame_uid: str):
    from pydicom.dataset import Dataset

    roi = Dataset()
    roi.ROINumber, roi.ReferencedFrameOfReferenceUID, roi.ROIName = number, frame_uid, segment.name[:64]
    algorithm = segment.algorithm
    roi.ROIGenerationAlgorithm = algorithm.type if algorithm else "MANUAL"
    if algorithm:
        roi.ROIGenerationDescription = f"{algorithm.name} {algorithm.version}".strip()[:64]
    return roi


def _roi_contour(number: int, segment: ExportSegment, reference: ReferenceSeries):
    """The segment's contours, computed on the series' own geometry so they lie on its slices."""
    from pydicom.dataset import Dataset

    item = Dataset()
    item.ReferencedROINumber = number
    item.ROIDisplayColor = _rgb255(segment.color)
    on_series = reference.volume.with_array(segment.mask.array)
    item.ContourSequence = [_contour(n, points, reference.datasets[k])
                            for n, (k, points) in enumerate(mask_contours(on_series), start=1)]
    return item


def _contour(number: int, points: np.ndarray, header):
    from pydicom.dataset import Dataset

    contour = Dataset()
    contour.ContourImageSequence = [_image_reference(header)]
    contour.ContourGeometricType = "CLOSED_PLANAR"
    contour.NumberOfContourPoints = len(points)
    contour.ContourNumber = number
    contour.ContourData = [format(v, ".10g") for v in points.ravel()]  # at most 16 characters (DS)
    return contour


def _observation(number: int):
    from pydicom.dataset import Dataset

    observation = Dataset()
    observation.ObservationNumber, observation.ReferencedROINumber = number, number
    observation.RTROIInterpretedType, observation.ROIInterpreter = "", ""
    return observation
