"""ITV results as DICOM: the ITV and each phase's mask as one RTSTRUCT (or SEG) on the reference phase.

This is the headless export that ``rtsam itv --out-dicom`` and the ITV4DCT module call:
``export_itv_dicom(result.itv, result.phase_masks, reference_phase, path)`` (or, with the DICOM
series at hand, ``write_itv_dicom(result.itv, result.phase_masks, reference, path)``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputError
from ..volume import Volume

ITV_NAME = "ITV"
FORMATS = ("rtstruct", "seg")


def phase_structure_name(index: int) -> str:
    return f"GTV_phase{index:02d}"


def itv_segments(itv: Volume, phase_masks: list[Volume]) -> tuple[list, list[str]]:
    """ExportSegments ``ITV``, ``GTV_phase00``... in phase order, and the names of empty phase masks
    (left out: a structure needs voxels)."""
    from ..io.dicom_export import ExportSegment

    if not np.any(itv.array):
        raise InputError("the ITV is empty: nothing to export")
    segments, empty = [ExportSegment(ITV_NAME, itv)], []
    for n, mask in enumerate(phase_masks):
        name = phase_structure_name(n)
        if np.any(mask.array):
            segments.append(ExportSegment(name, mask))
        else:
            empty.append(name)
    return segments, empty


def write_itv_dicom(itv: Volume, phase_masks: list[Volume], reference, path: str | Path, format: str = "rtstruct",
                    algorithm=None, label: str = "RTSAM ITV") -> tuple[Path, list[str]]:
    """Write the ITV and the phase masks (all on the reference phase grid) as one RTSTRUCT or SEG.

    ``reference``: the reference phase as a DICOM series - a folder or slice file, a
    ``rtsam.io.dicom_export.ReferenceSeries``, or the phase Volume read from DICOM (its
    ``metadata["files"]``, as ``read_dicom_phases`` gives). Returns the file and the names of
    phase masks left out because they are empty."""
    from ..io.dicom_export import write_dicom_seg, write_rtstruct

    if format not in FORMATS:
        raise InputError(f"ITV DICOM format must be {' or '.join(FORMATS)}, got {format!r}")
    segments, empty = itv_segments(itv, phase_masks)
    if format == "seg":
        return write_dicom_seg(segments, reference, path, algorithm, description=label), empty
    return write_rtstruct(segments, reference, path, algorithm, label=label), empty


def export_itv_dicom(itv: Volume, phase_masks: list[Volume], grid: Volume, path: str | Path, format: str = "rtstruct",
                     algorithm=None, reference=None) -> dict:
    """The ITV and phase masks as one RTSTRUCT/SEG on the reference phase's DICOM series: ``reference``
    (folder, slice file or ReferenceSeries) when given, else the series ``grid`` (the reference phase)
    was read from, else ``grid`` written first as a CT series in ``<path stem>_series/``.
    Returns path, format, empty_phases and written_reference_series (None when nothing was written)."""
    if format not in FORMATS:
        raise InputError(f"ITV DICOM format must be {' or '.join(FORMATS)}, got {format!r}")
    from ..io.dicom_export import as_reference
    from ..resample import on_same_voxels

    path, series_folder = Path(path), None
    if reference is None:
        reference = grid
        if not grid.metadata.get("files"):  # not read from DICOM: write the reference phase as a series
            series_folder = path.with_name(path.name.split(".")[0] + "_series")
            reference = write_reference_series(grid, series_folder)
    reference = as_reference(reference)
    # the series may order its slices (or axes) unlike the phase volume: same voxels, other grid
    itv = on_same_voxels(itv, reference.volume)
    phase_masks = [on_same_voxels(mask, reference.volume) for mask in phase_masks]
    written, empty = write_itv_dicom(itv, phase_masks, reference, path, format, algorithm)
    return {"path": str(written), "format": format, "empty_phases": empty,
            "written_reference_series": str(series_folder) if series_folder else None}


def write_reference_series(volume: Volume, folder: str | Path):
    """Write a phase volume that did not come from DICOM as a CT series, to reference it."""
    from ..io.dicom_export import read_reference
    from .dicom4d import write_dicom_phases

    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()):
        raise InputError("folder for the reference phase series is not empty", folder)
    return read_reference(write_dicom_phases([volume], folder, [0.0]))
