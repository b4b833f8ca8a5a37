"""4DCT input: phase files, a Slicer ``.seq.nrrd`` or a DICOM folder -> ordered phases on one grid."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import GeometryError, InputError
from ..resample import check_compatible, resample_to
from ..volume import Volume
from .dicom4d import read_dicom_phases
from .seqnrrd import read_seq_nrrd

NUMBER = re.compile(r"(\d+(?:\.\d+)?)")


@dataclass
class Phases:
    """Respiratory phases in cyclic order, all on the grid of ``volumes[reference]``."""

    volumes: list[Volume]
    values: list[float]  # phase position per volume (percent, index or trigger value), ascending
    source: str
    reference: int = 0
    warnings: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.volumes)

    @property
    def grid(self) -> Volume:
        return self.volumes[self.reference]

    def labels(self) -> list[str]:
        return [f"{v:g}" for v in self.values]


def load_phases(files: list[str | Path] | None = None, seq: str | Path | None = None, dicom: str | Path | None = None,
                reference: int = 0) -> Phases:
    """Read a 4DCT given as phase files, a ``.seq.nrrd`` or a DICOM folder (exactly one of them)."""
    given = [x for x in (files, seq, dicom) if x]
    if len(given) != 1:
        raise InputError("give the 4DCT once: phase files, a .seq.nrrd file or a DICOM folder")
    if files:
        volumes, values, source = *read_phase_files(files), f"{len(files)} phase files"
    elif seq:
        volumes, values, source = *read_seq_nrrd(seq), str(seq)
    else:
        volumes, values, source = *read_dicom_phases(dicom), str(dicom)
    return make_phases(volumes, values, source, reference)


def make_phases(volumes: list[Volume], values: list[float], source: str, reference: int = 0) -> Phases:
    """Check count, order and grids; resample phases on other grids to the reference (with a warning)."""
    if len(volumes) < 2:
        raise InputError(f"a 4DCT needs at least 2 phases, got {len(volumes)}", source)
    if len(set(values)) != len(values):
        raise InputError(f"duplicate phase indices {sorted({v for v in values if values.count(v) > 1})}", source)
    if not -len(volumes) <= reference < len(volumes):
        raise InputError(f"reference phase {reference} does not exist (phases 0 to {len(volumes) - 1})", source)
    order = np.argsort(values, kind="stable")
    volumes, values = [volumes[i] for i in order], [float(values[i]) for i in order]
    phases = Phases(volumes, values, source, reference % len(volumes))
    phases.volumes = [_on_grid(v, phases.grid, n, phases.warnings) for n, v in enumerate(volumes)]
    return phases


def read_phase_files(paths: list[str | Path]) -> tuple[list[Volume], list[float]]:
    """Read phase volumes; order by the number in each file name when every name has one."""
    from ..io import read_image

    volumes = [read_image(p) for p in paths]
    numbers = [NUMBER.findall(Path(p).name.split(".")[0]) for p in paths]
    if all(numbers):
        values = [float(n[-1]) for n in numbers]
        if len(set(values)) != len(values):
            dup = [str(p) for p, v in zip(paths, values) if values.count(v) > 1]
            raise InputError(f"duplicate phase indices in file names: {', '.join(dup)}")
        return volumes, values
    return volumes, [float(i) for i in range(len(paths))]


def check_mask_grid(mask: Volume, reference: Volume, what: str = "initial mask") -> None:
    """The init mask must lie on the reference phase grid."""
    if not mask.same_grid(reference):
        raise GeometryError(
            f"{what} grid {mask.size_ijk} at {np.round(mask.origin, 2).tolist()} mm, spacing "
            f"{np.round(mask.spacing, 3).tolist()} differs from the reference phase grid {reference.size_ijk} at "
            f"{np.round(reference.origin, 2).tolist()} mm, spacing {np.round(reference.spacing, 3).tolist()}",
            mask.metadata.get("path"),
        )


def _on_grid(volume: Volume, reference: Volume, index: int, warnings: list[str]) -> Volume:
    if volume.same_grid(reference):
        return volume
    check_compatible(volume, reference)  # other frame of reference or no overlap: cannot resample
    name = volume.metadata.get("path") or f"phase {index}"
    warnings.append(f"phase {index} ({name}) is on another grid; resampled to the reference phase (linear)")
    return resample_to(volume, reference, "linear", default_value=float(volume.array.min()))
