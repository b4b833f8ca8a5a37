"""A label for a reference image: a 0/1 image on its grid, or one structure of an RTSTRUCT rasterised onto it."""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError
from ..volume import Volume
from .dicom import dicom_modality
from .images import read_image
from .rtstruct import StructureSet, read_rtstruct


def read_label(path: str | Path, reference: Volume, structure: str | None = None) -> Volume:
    """The label at ``path`` for ``reference``: an image file as it is (the caller checks its grid), or an
    RTSTRUCT's ``structure`` (default: its only structure with contours) as a mask on the reference grid."""
    path = Path(path)
    if path.is_file() and dicom_modality(path) == "RTSTRUCT":
        structures = read_rtstruct(path)
        return structures.mask(structure or _only_structure(structures), reference)
    if structure is not None:
        raise InputError(f"structure {structure!r} was named, but the label is not an RTSTRUCT", path)
    return read_image(path)


def _only_structure(structures: StructureSet) -> str:
    names = [s.name for s in structures.structures if s.contours]
    if len(names) != 1:
        listed = ", ".join(names) or "none"
        raise InputError(f"RTSTRUCT holds {len(names)} structures with contours ({listed}): name one", structures.path)
    return names[0]
