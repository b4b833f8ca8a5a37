"""Task presets, segment naming/colour/terminology, quality flags, dose detection, export."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import slicer

from rtsam.errors import InputError

from .mrml_convert import set_segment_mask

LOW_QUALITY = 0.5  # predicted IoU below this is flagged for review
DOSE_ATTRIBUTE = "DicomRtImport.DoseVolume"  # set by SlicerRT's DICOM-RT importer
CONTEXT = "Segmentation category and type - 3D Slicer General Anatomy list"
ANATOMY = "Anatomic codes - DICOM master list"
ALTERED = "SCT^49755003^Morphologically Altered Structure"


@dataclass(frozen=True)
class TaskPreset:
    key: str
    text: str  # the prompt sent to the text encoder
    segment_name: str
    color: tuple[float, float, float]
    type_code: str  # "scheme^code^meaning"
    region_code: str

    @property
    def terminology(self) -> str:
        """Slicer's terminology entry string for this finding."""
        return f"{CONTEXT}~{ALTERED}~{self.type_code}~^^~{ANATOMY}~{self.region_code}~^^"


PRESETS = {
    p.key: p
    for p in (
        TaskPreset("osteoradionecrosis", "osteoradionecrosis of the mandible after head and neck radiotherapy",
                   "Osteoradionecrosis", (0.90, 0.60, 0.10), "SCT^6574001^Necrosis", "SCT^91609006^Mandible"),
        TaskPreset("cerebral edema", "cerebral edema after brain radiotherapy",
                   "Cerebral edema", (0.20, 0.60, 1.00), "SCT^79654002^Edema", "SCT^12738006^Brain"),
        TaskPreset("cerebral radiation necrosis", "cerebral radiation necrosis after brain radiotherapy",
                   "Cerebral radiation necrosis", (0.85, 0.15, 0.15), "SCT^6574001^Necrosis", "SCT^12738006^Brain"),
    )
}


def preset_for(task: str | None) -> TaskPreset | None:
    return PRESETS.get((task or "").strip().lower())


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
        segment.SetTerminology(preset.terminology)
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
