"""RTSTRUCT -> named structures with their closed planar contours, rasterised on any grid."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from ..errors import GeometryError, InputError
from ..volume import Volume
from .dicom import read_dataset
from .rasterize import contour_normal, plane_spacing, rasterize


@dataclass
class Structure:
    number: int
    name: str
    contours: list[np.ndarray] = field(default_factory=list)  # closed planar, (n, 3) LPS mm each


@dataclass
class StructureSet:
    path: str
    frame_of_reference_uid: str | None
    structures: list[Structure]

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.structures]

    def structure(self, name: str) -> Structure:
        """The structure called ``name`` (exact, else case-insensitive); InputError listing the names."""
        for match in (lambda s: s.name == name, lambda s: s.name.lower() == name.lower()):
            found = [s for s in self.structures if match(s)]
            if found:
                return found[0]
        raise InputError(f"no structure named {name!r}; available: {', '.join(self.names)}", self.path)

    def roi_number(self, name: str) -> int:
        return self.structure(name).number

    def has_contours(self, name: str) -> bool:
        return bool(self.structure(name).contours)

    def mask(self, name: str, reference: Volume, allow_empty: bool = False, allow_frame_mismatch: bool = False) -> Volume:
        """uint8 mask of a structure on the reference grid (voxel centres inside the contours)."""
        structure = self.structure(name)
        if not structure.contours:
            raise InputError(f"structure {structure.name!r} has no closed planar contours", self.path)
        self._check_frame(reference, allow_frame_mismatch)
        array = rasterize(structure.contours, reference, self._normal, self._plane_spacing)
        if not allow_empty and not array.any():
            raise GeometryError(f"structure {structure.name!r} lies outside the reference grid", self.path)
        return Volume(
            array=array,
            spacing=reference.spacing,
            origin=reference.origin,
            direction=reference.direction.copy(),
            frame_of_reference_uid=reference.frame_of_reference_uid or self.frame_of_reference_uid,
            metadata={"path": self.path, "modality": "RTSTRUCT", "structure": structure.name, "roi_number": structure.number},
        )

    def masks(self, reference: Volume, names: list[str] | None = None, allow_frame_mismatch: bool = False) -> dict[str, Volume]:
        """Masks of the named structures (default: all with contours), keyed by name; empty ones kept."""
        names = names if names is not None else [s.name for s in self.structures if s.contours]
        return {n: self.mask(n, reference, allow_empty=True, allow_frame_mismatch=allow_frame_mismatch) for n in names}

    def _check_frame(self, reference: Volume, allow_mismatch: bool) -> None:
        ours, theirs = self.frame_of_reference_uid, reference.frame_of_reference_uid
        if ours and theirs and ours != theirs and not allow_mismatch:
            raise GeometryError(
                f"frame of reference {ours} differs from the reference image's {theirs} "
                f"({reference.metadata.get('path', 'reference')})",
                self.path,
            )

    @cached_property
    def _normal(self) -> np.ndarray:
        return contour_normal([c for s in self.structures for c in s.contours])

    @cached_property
    def _plane_spacing(self) -> float | None:
        return plane_spacing([c for s in self.structures for c in s.contours], self._normal)


def read_rtstruct(path: str | Path) -> StructureSet:
    """Read the structures of an RTSTRUCT file (only CLOSED_PLANAR contours are kept)."""
    path = Path(path)
    ds = read_dataset(path, "RTSTRUCT")
    if "StructureSetROISequence" not in ds:
        raise InputError("RTSTRUCT without StructureSetROISequence (truncated file?)", path)
    contours = _contours_by_roi(ds, path)
    structures = [
        Structure(int(roi.ROINumber), str(roi.get("ROIName", f"ROI {roi.ROINumber}")), contours.get(int(roi.ROINumber), []))
        for roi in ds.StructureSetROISequence
    ]
    return StructureSet(str(path), _frame_uid(ds), structures)


def _contours_by_roi(ds, path: Path) -> dict[int, list[np.ndarray]]:
    found: dict[int, list[np.ndarray]] = {}
    for roi in ds.get("ROIContourSequence", []):
        polygons = []
        for contour in roi.get("ContourSequence", []):
            if str(contour.get("ContourGeometricType", "")).upper() != "CLOSED_PLANAR":
                continue
            points = np.asarray(contour.get("ContourData", []), dtype=float)
            if points.size % 3 or not np.all(np.isfinite(points)):
                raise InputError(f"ROI {roi.ReferencedROINumber}: ContourData is not a list of finite x, y, z triples", path)
            if points.size >= 9:
                polygons.append(points.reshape(-1, 3))
        found[int(roi.ReferencedROINumber)] = polygons
    return found


def _frame_uid(ds) -> str | None:
    refs = ds.get("ReferencedFrameOfReferenceSequence", [])
    uid = refs[0].get("FrameOfReferenceUID") if refs else ds.get("FrameOfReferenceUID")
    return str(uid) if uid else None
