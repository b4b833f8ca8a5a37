"""Task presets, segment naming/colour/terminology, quality flags, dose detection, export
(.seg.nrrd, DICOM SEG, DICOM RTSTRUCT)."""

from __future__ import annotations

from pathlib import Path

import slicer
import vtk

from rtsam.errors import InputError
from rtsam.presets import TaskPreset, preset_for

from .mrml_convert import segment_mask, set_segment_mask, volume_from_node

LOW_QUALITY = 0.5  # predicted IoU below this is flagged for review
DOSE_ATTRIBUTE = "DicomRtImport.DoseVolume"  # set by SlicerRT's DICOM-RT importer
CONTEXT = "Segmentation category and type - 3D Slicer General Anatomy list"
ANATOMY = "Anatomic codes - DICOM master list"
DICOM_UIDS_ATTRIBUTE = "DICOM.instanceUIDs"  # set by Slicer's DICOM import on loaded volumes
EXPORT_FILTERS = {"Segmentation (*.seg.nrrd)": "nrrd", "DICOM SEG (*.dcm)": "seg", "DICOM RTSTRUCT (*.dcm)": "rtstruct"}


def preset_terminology(preset: TaskPreset) -> str:
    """Slicer's terminology entry string for a preset finding."""
    return f"{CONTEXT}~{preset.category_code}~{preset.type_code}~^^~{ANATOMY}~{preset.region_code}~^^"


def task_text(task: str | None) -> str | None:
    """Preset keys expand to their prompt sentence; free text passes unchanged."""
    preset = preset_for(task)
    return preset.text if preset else (task.strip() or None if task else None)


def write_result_segment(segmentation_node, mask, task: str | None, summary: dict,
                         name: str | None = None, segment_id: str | None = None) -> str:
    """Store a mask as a named, coloured segment with terminology and provenance tags."""
    preset = preset_for(task)
    name = name or (preset.segment_name if preset else (task or "RT injury").strip()[:40])
    color = preset.color if preset else (1.0, 0.85, 0.0)
    segment_id = set_segment_mask(segmentation_node, mask, name, color, segment_id)
    segment = segmentation_node.GetSegmentation().GetSegment(segment_id)
    if preset:
        segment.SetTerminology(preset_terminology(preset))
    for key in ("engine", "weights", "quality", "volume_ml"):
        if summary.get(key) is not None:
            segment.SetTag(f"RTSAM.{key}", str(summary[key]))
    return segment_id


def is_low_quality(quality: float | None) -> bool:
    return quality is not None and quality < LOW_QUALITY


def dose_nodes(scene) -> list:
    """Volume nodes that SlicerRT marked as RTDOSE, in scene order."""
    nodes = scene.GetNodesByClass("vtkMRMLScalarVolumeNode")
    found = [nodes.GetItemAsObject(i) for i in range(nodes.GetNumberOfItems())]
    return [n for n in found if n.GetAttribute(DOSE_ATTRIBUTE) not in (None, "", "0", "false")]


def export_segmentation_nrrd(segmentation_node, path: str | Path) -> Path:
    """Write ``.seg.nrrd`` with Slicer's own storage node (segment names, colours, tags kept)."""
    path = Path(path)
    if not path.name.endswith(".seg.nrrd"):
        raise InputError("segmentation files must end in .seg.nrrd", path)
    if not path.parent.is_dir():
        raise InputError("output folder does not exist", path.parent)
    storage = slicer.vtkMRMLSegmentationStorageNode()
    storage.SetFileName(str(path))
    if not storage.WriteData(segmentation_node):
        raise InputError(f"could not write segmentation '{segmentation_node.GetName()}'", path)
    return path


def export_format(path: str | Path, name_filter: str = "") -> str:
    """"nrrd" for .seg.nrrd; "seg" or "rtstruct" for .dcm as the chosen file filter says (default SEG)."""
    name = Path(path).name.lower()
    if name.endswith(".seg.nrrd"):
        return "nrrd"
    if name.endswith(".dcm"):
        return "rtstruct" if EXPORT_FILTERS.get(name_filter) == "rtstruct" else "seg"
    raise InputError("export to .seg.nrrd, or .dcm for DICOM SEG or RTSTRUCT", path)


def reference_dicom_file(volume_node) -> str | None:
    """A slice file of the DICOM series the volume was loaded from (Slicer's DICOM database), else None."""
    uids = (volume_node.GetAttribute(DICOM_UIDS_ATTRIBUTE) or "").split() if volume_node else []
    database = getattr(slicer, "dicomDatabase", None)
    if not uids or database is None:
        return None
    return database.fileForInstance(uids[0]) or None


def export_segmentation_dicom(segmentation_node, reference_volume_node, reference_dir: str | Path,
                              path: str | Path, fmt: str = "seg") -> Path:
    """Write all segments as one DICOM SEG (``fmt="seg"``) or RTSTRUCT referencing the DICOM series at
    ``reference_dir`` (its folder or one of its files), which must be the reference volume's series.
    Names, colours, terminology codes and the engine tags of the segments are kept."""
    from rtsam.io.dicom_export import read_reference, write_dicom_seg, write_rtstruct

    from .dependencies import dicom_seg_unavailable

    if fmt not in ("seg", "rtstruct"):
        raise InputError(f"DICOM export format must be 'seg' or 'rtstruct', got {fmt!r}")
    if fmt == "seg" and dicom_seg_unavailable():
        raise InputError(dicom_seg_unavailable())
    segmentation = segmentation_node.GetSegmentation()
    ids = [segmentation.GetNthSegmentID(i) for i in range(segmentation.GetNumberOfSegments())]
    if not ids:
        raise InputError(f"segmentation '{segmentation_node.GetName()}' has no segments to export")
    reference = read_reference(reference_dir)
    grid = volume_from_node(reference_volume_node)
    segments = [_export_segment(segmentation_node, segment_id, grid) for segment_id in ids]
    return (write_dicom_seg if fmt == "seg" else write_rtstruct)(segments, reference, path)


def _export_segment(segmentation_node, segment_id: str, grid):
    from rtsam.io.dicom_export import Algorithm, ExportSegment

    segment = segmentation_node.GetSegmentation().GetSegment(segment_id)
    engine, weights = segment_tag(segment, "RTSAM.engine"), segment_tag(segment, "RTSAM.weights")
    return ExportSegment(
        name=segment.GetName(),
        mask=segment_mask(segmentation_node, segment_id, grid),
        color=tuple(segment.GetColor()),
        algorithm=Algorithm(engine, weights) if engine else None,
        **terminology_codes(segment.GetTerminology()),
    )


def terminology_codes(entry: str | None) -> dict[str, str]:
    """category_code, type_code and region_code ("scheme^code^meaning") found in a terminology entry string."""
    fields = (entry or "").split("~")
    wanted = {1: "category_code", 2: "type_code", 5: "region_code"}
    return {key: fields[i] for i, key in wanted.items()
            if i < len(fields) and len(fields[i].split("^")) == 3 and all(fields[i].split("^"))}


def segment_tag(segment, key: str) -> str:
    value = vtk.reference("")
    return str(value) if segment.GetTag(key, value) else ""
