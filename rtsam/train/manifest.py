"""Training manifests: which images, labels, doses and task texts to fine-tune on.

A manifest is one of
- a CSV file with a header ``image,label[,dose][,task][,patient]``;
- a JSON file: a list of such objects, or ``{"cases": [...]}``;
- a folder of NIfTI/NRRD/MHA files named ``<case>_image.*``, ``<case>_label.*`` and
  optionally ``<case>_dose.*`` (the task comes from ``default_task``).
Relative paths are relative to the manifest's folder; ``image`` and ``dose`` may also be
DICOM (a CT/MR folder, an RTDOSE file). Rows are numbered from 1 (the first data row).

Every row is checked (files exist and read, label on the image grid, label not empty, dose
overlaps the image, task known to a task-conditioned checkpoint). Bad rows make
``validate`` refuse with every problem listed, or, with ``skip_bad=True``, be dropped and
reported; data is never skipped silently.
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..io import read_image, read_rtdose
from ..io.dicom import is_dicom_file
from ..volume import Volume

COLUMNS = ("image", "label", "dose", "task", "patient")
IMAGE_SUFFIXES = (".nrrd", ".nii", ".nii.gz", ".mha", ".nhdr", ".mhd")


@dataclass
class Case:
    row: int
    image: Path
    label: Path
    dose: Path | None = None
    task: str | None = None
    patient: str | None = None

    @property
    def name(self) -> str:
        return f"row {self.row} ({self.image.name})"


@dataclass
class LoadedCase:
    """A validated case: image, binary label on the image grid, dose (any grid) or None."""

    case: Case
    image: Volume
    label: Volume
    dose: Volume | None


@dataclass
class Manifest:
    path: Path
    cases: list[LoadedCase]
    skipped: list[str] = field(default_factory=list)
    sha256: str = ""

    @property
    def tasks(self) -> list[str]:
        return sorted({c.case.task for c in self.cases if c.case.task})


def read_manifest(path: str | Path, default_task: str | None = None) -> list[Case]:
    """Parse a CSV/JSON manifest or a folder into cases (no file checks yet)."""
    path = Path(path)
    if not path.exists():
        raise InputError("manifest not found", path)
    if path.is_dir():
        rows = _folder_rows(path)
    elif path.suffix.lower() == ".csv":
        rows = _csv_rows(path)
    elif path.suffix.lower() == ".json":
        rows = _json_rows(path)
    else:
        raise InputError("a manifest is a .csv or .json file or a folder of images", path)
    if not rows:
        raise InputError("manifest lists no cases", path)
    base = path if path.is_dir() else path.parent
    return [_case(i, row, base, default_task, path) for i, row in enumerate(rows, start=1)]


def _csv_rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        header = [h.strip() for h in (reader.fieldnames or [])]
        if "image" not in header or "label" not in header:
            raise InputError(f"CSV header must name 'image' and 'label' columns, found {header}", path)
        return [{(k or "").strip(): (v or "").strip() for k, v in row.items()} for row in reader]


def _json_rows(path: Path) -> list[dict]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InputError(f"invalid JSON ({error})", path) from None
    rows = data.get("cases") if isinstance(data, dict) else data
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise InputError("JSON manifest must be a list of objects or {\"cases\": [...]}", path)
    return rows


def _folder_rows(folder: Path) -> list[dict]:
    files = {}
    for f in sorted(folder.iterdir()):
        name = f.name.lower()
        suffix = next((s for s in IMAGE_SUFFIXES if name.endswith(s)), None)
        stem = f.name[: -len(suffix)] if suffix else ""
        for role in ("image", "label", "dose"):
            if stem.endswith(f"_{role}"):
                files.setdefault(stem[: -len(role) - 1], {})[role] = f.name
    for case, roles in files.items():
        if "image" not in roles or "label" not in roles:
            raise InputError(f"case '{case}' needs both {case}_image.* and {case}_label.* (found {sorted(roles.values())})", folder)
    return [files[c] for c in sorted(files)]


def _case(row: int, entry: dict, base: Path, default_task: str | None, manifest: Path) -> Case:
    unknown = set(entry) - set(COLUMNS)
    if unknown:
        raise InputError(f"row {row}: unknown column(s) {sorted(unknown)}; expected {list(COLUMNS)}", manifest)
    for key in ("image", "label"):
        if not entry.get(key):
            raise InputError(f"row {row}: '{key}' is empty", manifest)

    def resolve(value):
        return (base / str(value)).resolve() if value else None

    return Case(
        row=row,
        image=resolve(entry["image"]),
        label=resolve(entry["label"]),
        dose=resolve(entry.get("dose")),
        task=str(entry.get("task") or "").strip() or default_task,
        patient=str(entry.get("patient") or "").strip() or None,
    )


def load_case(case: Case, known_tasks: list[str] | None = None) -> LoadedCase:
    """Read and check one case; raises InputError naming the row and the file."""
    if not case.task:
        raise InputError(f"{case.name}: no task text (add a 'task' column or give a default task)")
    if known_tasks is not None and case.task not in known_tasks:
        raise InputError(f"{case.name}: task {case.task!r} is not known to the checkpoint (known: {known_tasks})")
    image = _read(case, case.image, "image")
    label = _read(case, case.label, "label")
    if not label.same_grid(image):
        raise InputError(
            f"{case.name}: label grid {label.size_ijk} spacing {np.round(label.spacing, 3).tolist()} does not match "
            f"image grid {image.size_ijk} spacing {np.round(image.spacing, 3).tolist()}", case.label)
    mask = label.array > 0
    if not mask.any():
        raise InputError(f"{case.name}: label is empty", case.label)
    dose = _read_dose(case) if case.dose else None
    return LoadedCase(case, image, label.with_array(mask.astype(np.uint8)), dose)


def _read(case: Case, path: Path, role: str) -> Volume:
    try:
        return read_image(path)
    except InputError as error:
        raise InputError(f"{case.name}: {role}: {error}") from None


def _read_dose(case: Case) -> Volume:
    try:
        dose = read_rtdose(case.dose) if _is_rtdose(case.dose) else read_image(case.dose)
    except InputError as error:
        raise InputError(f"{case.name}: dose: {error}") from None
    if not np.any(dose.array > 0):
        raise InputError(f"{case.name}: dose is zero everywhere", case.dose)
    return dose


def _is_rtdose(path: Path) -> bool:
    return path.is_file() and is_dicom_file(path)


def validate(path: str | Path, default_task: str | None = None, known_tasks: list[str] | None = None,
             skip_bad: bool = False) -> Manifest:
    """Read every case of a manifest; refuse (or, with ``skip_bad``, drop and report) bad rows."""
    cases = read_manifest(path, default_task)
    loaded, problems = [], []
    for case in cases:
        try:
            loaded.append(load_case(case, known_tasks))
        except InputError as error:
            problems.append(str(error))
    if problems and not skip_bad:
        listed = "; ".join(problems)
        raise InputError(f"{len(problems)} of {len(cases)} manifest rows are unusable: {listed}", path)
    if not loaded:
        raise InputError(f"no usable case in the manifest ({len(problems)} rows rejected: {'; '.join(problems)})", path)
    return Manifest(Path(path), loaded, problems, manifest_hash([c.case for c in loaded]))


def manifest_hash(cases: list[Case]) -> str:
    """sha256 over each case's task, patient text and the contents of its files."""
    from ..engines.registry import file_sha256

    digest = hashlib.sha256()
    for case in cases:
        entry = {k: str(v) for k, v in asdict(case).items() if k in ("task", "patient")}
        for role in ("image", "label", "dose"):
            entry[role] = _content_hash(getattr(case, role), file_sha256)
        digest.update(json.dumps(entry, sort_keys=True).encode())
    return digest.hexdigest()


def _content_hash(path: Path | None, file_sha256) -> str | None:
    if path is None:
        return None
    if path.is_dir():
        return hashlib.sha256("".join(file_sha256(str(f)) for f in sorted(path.rglob("*")) if f.is_file()).encode()).hexdigest()
    return file_sha256(str(path))
