"""Cases into the viewer's MRML scene through rtsam.io (the readers every rtsam command uses).

A case is an image file (NRRD, NIfTI, MHA) or a DICOM folder: its CT/MR series, and the RTDOSE
and RTSTRUCT files found beside it. Optional mask files (a label, a GTV) become reference segments.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError

REFERENCE_COLORS = ((0.2, 0.9, 0.9), (0.9, 0.9, 0.2), (0.7, 0.4, 1.0), (0.4, 1.0, 0.4))


@dataclass
class Case:
    image_node: object
    dicom_dir: Path | None = None  # the DICOM series folder (DICOM SEG / RTSTRUCT export reference)
    dose_node: object = None
    references: object = None  # vtkMRMLSegmentationNode: label files and RTSTRUCT structures
    names: list[str] = field(default_factory=list)  # reference segment names


def dicom_rt_files(folder: Path) -> dict[str, Path]:
    """The first RTDOSE and RTSTRUCT files of a folder, by their Modality."""
    from ..io.dicom import dicom_modality

    found = {}
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        modality = dicom_modality(path)
        if modality in ("RTDOSE", "RTSTRUCT"):
            found.setdefault(modality, path)
    return found


def load_case(scene, image_path: str | Path, masks: list[str | Path] = ()) -> Case:
    """Image (file or DICOM folder, with its RTDOSE/RTSTRUCT) plus mask files as reference segments."""
    from RTSAMCommon.mrml_convert import add_volume_node
    from RTSAMCommon.segments import DOSE_ATTRIBUTE

    from ..io import read_image, read_rtdose, read_rtstruct

    image_path = Path(image_path)
    image = read_image(image_path)
    case = Case(add_volume_node(scene, image, image_path.name.split(".")[0] or "image"))
    case.references = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "Reference")
    case.references.SetReferenceImageGeometryParameterFromVolumeNode(case.image_node)
    case.references.CreateDefaultDisplayNodes()
    case.references.GetDisplayNode().SetOpacity2DFill(0.0)  # references as outlines, the result filled
    if image_path.is_dir():
        case.dicom_dir = image_path
        rt = dicom_rt_files(image_path)
        if "RTDOSE" in rt:
            case.dose_node = add_volume_node(scene, read_rtdose(rt["RTDOSE"]), "RTDOSE")
            case.dose_node.SetAttribute(DOSE_ATTRIBUTE, "1")
        if "RTSTRUCT" in rt:
            structures = read_rtstruct(rt["RTSTRUCT"])
            for name, mask in structures.masks(image, allow_frame_mismatch=False).items():
                add_reference(case, mask, name)
    for path in masks:
        add_mask_file(case, path)
    return case


def add_mask_file(case: Case, path: str | Path) -> str:
    """A label file (non-zero voxels) as a reference segment named after the file; its segment id."""
    from ..io import read_image

    path = Path(path)
    mask = read_image(path)
    if not np.any(mask.array):
        raise InputError("the mask is empty", path)
    return add_reference(case, mask.with_array((mask.array > 0).astype(np.uint8)), path.name.split(".")[0])


def add_reference(case: Case, mask, name: str) -> str:
    from RTSAMCommon.mrml_convert import set_segment_mask

    color = REFERENCE_COLORS[len(case.names) % len(REFERENCE_COLORS)]
    segment_id = set_segment_mask(case.references, mask, name, color)
    case.names.append(name)
    return segment_id
