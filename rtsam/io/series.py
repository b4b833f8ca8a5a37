"""DICOM CT/MR series from a folder: pydicom finds the slices (odd files left out with a warning),
they are grouped by SeriesInstanceUID and stack, and one stack is read as a Volume."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..volume import Volume
from .dicom import floats
from .dicom_scan import ENHANCED_CLASSES, Scan, Slice, frame_count, scan_folder
from .stack import read_enhanced, read_stack


@dataclass
class SeriesInfo:
    uid: str  # SeriesInstanceUID, with "#n" when the series mixes stacks (n = 1 for the largest)
    slices: list[Slice]
    modality: str
    description: str

    @property
    def enhanced(self) -> bool:
        return str(self.slices[0].header.get("SOPClassUID", "")) in ENHANCED_CLASSES

    def summary(self) -> str:
        count = f"{frame_count(self.slices[0].header)} frames" if self.enhanced else f"{len(self.slices)} slices"
        return f"{self.uid} ({self.modality}, {self.description or 'no description'}, {count})"


def list_series(folder: str | Path, scan: Scan | None = None, prefer: Path | None = None) -> list[SeriesInfo]:
    """The image series of a folder (RT objects, reports, colour and unplaced images left out);
    of two copies of one instance, ``prefer`` (else the first by name) is kept."""
    scan = scan or scan_folder(Path(folder))
    by_uid = defaultdict(list)
    for item in _unique_instances(scan, prefer):
        by_uid[str(item.header.get("SeriesInstanceUID", ""))].append(item)
    found = []
    for uid, items in by_uid.items():
        stacks = _stacks(items)
        for n, stack in enumerate(stacks, 1):
            header = stack[0].header
            found.append(SeriesInfo(f"{uid}#{n}" if len(stacks) > 1 else uid, stack,
                                    str(header.get("Modality", "")).upper(), str(header.get("SeriesDescription", ""))))
    return found


def read_series(folder: str | Path, series_uid: str | None = None, chosen_file: str | Path | None = None) -> Volume:
    """Read one series of a folder; several series need ``series_uid`` (or the ``chosen_file`` of one)."""
    folder = Path(folder)
    chosen_file = Path(chosen_file).resolve() if chosen_file else None
    scan = scan_folder(folder)
    series = list_series(folder, scan, chosen_file)
    info = _choose(series, series_uid, chosen_file, folder, scan)
    scan.warn_skipped()
    if info.enhanced:
        volume = read_enhanced(info.slices[0])
    else:
        volume = read_stack(info.slices, info.uid, folder, _unreadable_note(scan))
    volume.frame_of_reference_uid = str(info.slices[0].header.get("FrameOfReferenceUID", "")) or None
    volume.metadata.update(path=str(folder), modality=info.modality, series_uid=info.uid,
                           series_description=info.description, skipped_files=[str(p) for p, _ in scan.skipped])
    return volume


def _choose(series: list[SeriesInfo], uid: str | None, chosen_file: Path | None, folder: Path, scan: Scan):
    if not series:
        subfolders = any(p.is_dir() for p in folder.iterdir())
        raise InputError("no DICOM image series found in this folder" + _skipped_note(scan)
                         + ("; sub-folders are not searched: give the folder of the series" if subfolders else ""),
                         folder)
    if uid is not None:
        matching = [s for s in series if s.uid == uid or s.uid.split("#")[0] == uid]
        if chosen_file is not None:
            matching = [s for s in matching if chosen_file in {p.path.resolve() for p in s.slices}] or matching
        if not matching:
            raise InputError(f"series {uid} not found; available: " + _listing(series), folder)
        series = matching
    if len(series) > 1:
        raise InputError(f"{len(series)} image series found, choose one by series UID: " + _listing(series), folder)
    return series[0]


def _listing(series: list[SeriesInfo]) -> str:
    return "; ".join(s.summary() for s in series)


def _skipped_note(scan: Scan) -> str:
    if not scan.skipped:
        return " (it holds no files)"
    path, reason = scan.skipped[0]
    more = f"; {len(scan.skipped) - 1} more files left out" if len(scan.skipped) > 1 else ""
    return f" ({path.name} {reason}{more})"


def _unreadable_note(scan: Scan) -> str:
    """Names the files left out as unreadable or without pixel data: a gap in the series is likely theirs."""
    unreadable = [p for p, reason in scan.skipped
                  if reason.startswith("cannot read") or reason.endswith("without image pixel data")]
    if not unreadable:
        return ""
    return f" ({len(unreadable)} truncated or corrupt files left out, e.g. {unreadable[0]})"


def _unique_instances(scan: Scan, prefer: Path | None) -> list[Slice]:
    """One file per SOPInstanceUID (copies of an instance, e.g. in two transfer syntaxes, are left out)."""
    seen: dict[str, Path] = {}
    unique = []
    for item in sorted(scan.slices, key=lambda s: s.path.resolve() != prefer):
        sop = str(item.header.get("SOPInstanceUID", ""))
        if sop and sop in seen:
            scan.skipped.append((item.path, f"same SOPInstanceUID as {seen[sop].name} (a copy)"))
            continue
        seen[sop] = item.path
        unique.append(item)
    return unique


def _stacks(items: list[Slice]) -> list[list[Slice]]:
    """Split a series by orientation, pixel spacing and matrix size (within 1e-3); largest stack first.
    Each enhanced multi-frame file is a stack of its own."""
    groups: list[tuple[np.ndarray | None, list[Slice]]] = []
    for item in items:
        key = _stack_key(item)
        same = (g for k, g in groups if key is not None and k is not None and np.allclose(k, key, atol=1e-3))
        group = next(same, None)
        if group is None:
            groups.append((key, [item]))
        else:
            group.append(item)
    return sorted((g for _, g in groups), key=len, reverse=True)


def _stack_key(item: Slice) -> np.ndarray | None:
    header = item.header
    if str(header.get("SOPClassUID", "")) in ENHANCED_CLASSES:
        return None
    return np.concatenate([floats(header, "ImageOrientationPatient", item.path, 6),
                           floats(header, "PixelSpacing", item.path, 2), [int(header.Rows), int(header.Columns)]])
