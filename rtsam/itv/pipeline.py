"""ITV from a 4DCT: per-phase segmentation, phase-coherent filtering, union, report."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..devices import device_info
from ..engines.base import Engine, ProgressCallback, Prompt, check_cancel
from ..engines.registry import load_engine
from ..errors import InputError
from ..volume import Volume
from .filters import filter_phases
from .phases import Phases
from .propagate import MARGIN_MM, Propagation, initial_prompt, segment_phases
from .register import register_phases
from .report import mip_comparison, motion_amplitude, phase_table

PROPAGATIONS = ("rigid", "deformable", "engine")


@dataclass
class ITVResult:
    itv: Volume  # uint8 on the reference phase grid
    phase_masks: list[Volume]  # after filtering
    raw_masks: list[Volume]  # as the engine gave them
    mip_itv: Volume
    report: dict


def run_itv(phases: Phases, prompt: Prompt | None = None, init_mask: Volume | None = None,
            engine: Engine | str | None = None, window: int = 3, method: str = "majority", voxelwise: bool = False,
            margin_mm=MARGIN_MM, device: str = "auto", checkpoint: str | None = None, propagation: str = "rigid",
            progress: ProgressCallback | None = None, cancel: Callable[[], bool] | None = None) -> ITVResult:
    """Segment every phase from the initial prompt (or init mask), filter, and union into the ITV.

    ``propagation``: "rigid" or "deformable" carry the reference result (the init mask, else the
    engine's segmentation of the reference phase) to the other phases by registration
    (``rtsam.itv.register``); "engine" segments every phase with the engine, each prompted from
    its neighbour's result (``rtsam.itv.propagate``)."""
    if propagation not in PROPAGATIONS:
        raise InputError(f"propagation must be one of {', '.join(PROPAGATIONS)}, got {propagation!r}")
    timings, start = {}, time.perf_counter()
    first = initial_prompt(phases, prompt, init_mask, margin_mm)
    engine_used = propagation == "engine" or init_mask is None
    if engine_used and not isinstance(engine, Engine):
        engine = load_engine(engine, checkpoint, device)
    if init_mask is not None and isinstance(engine, Engine) and not engine.accepts_clicks:
        first = initial_prompt(phases, prompt, init_mask, margin_mm, click=False)
    timings["engine_load_s"] = time.perf_counter() - start

    def segment_progress(fraction: float, message: str) -> None:
        if progress is not None:
            progress(0.9 * fraction, message)

    if propagation == "engine":
        segmented = segment_phases(engine, phases, first, margin_mm, segment_progress, cancel)
    else:
        segmented = _register(phases, engine, first, init_mask, propagation, segment_progress, cancel)
    timings["segmentation_s"] = sum(segmented.timings_s)
    check_cancel(cancel)
    mark = time.perf_counter()
    masks, removed = _filter(phases, segmented, init_mask, window, method, voxelwise)
    itv = phases.grid.with_array(np.any([m.array for m in masks], axis=0).astype(np.uint8), path=None)
    if not itv.array.any():
        raise InputError("no phase produced a segmentation: check the initial prompt", phases.source)
    timings["filtering_s"] = time.perf_counter() - mark
    mark = time.perf_counter()
    reference_mask = masks[phases.reference] if masks[phases.reference].array.any() else itv
    mip, mip_summary = mip_comparison(phases.volumes, reference_mask, itv)
    timings["report_s"] = time.perf_counter() - mark
    timings["total_s"] = time.perf_counter() - start
    if progress is not None:
        progress(1.0, "done")
    engine = engine if engine_used else None  # a server passes its engine even when registration needs none
    report = _report(phases, engine, propagation, segmented, masks, itv, removed, mip_summary, timings)
    return ITVResult(itv, masks, segmented.masks, mip, report)


def _register(phases: Phases, engine: Engine | None, prompt: Prompt, init_mask: Volume | None, method: str,
              progress: ProgressCallback | None, cancel: Callable[[], bool] | None) -> Propagation:
    """Registration propagation from the init mask, or from the engine's result on the reference phase."""
    start = time.perf_counter()
    if init_mask is None:
        reference_mask = engine.open(phases.grid).predict(prompt, cancel=cancel).mask
        if not reference_mask.array.any():
            raise InputError("the engine found nothing on the reference phase: check the initial prompt", phases.source)
    else:
        reference_mask = phases.grid.with_array((init_mask.array > 0).astype(np.uint8), path=None)
    seconds = time.perf_counter() - start
    segmented = register_phases(phases, reference_mask, method, progress, cancel)
    segmented.timings_s[phases.reference] = seconds
    segmented.prompts[phases.reference] = prompt
    return segmented


def _filter(phases: Phases, segmented: Propagation, init_mask: Volume | None, window: int, method: str,
            voxelwise: bool) -> tuple[list[Volume], list[dict]]:
    """Filter inside the box holding every raw result and prompt (fast on full CT grids)."""
    grid = phases.grid
    anchors_full = [None if p is None or p.box_lps is None else _box_region(grid, p.box_lps) for p in segmented.prompts]
    if init_mask is not None:
        box = anchors_full[phases.reference]
        anchors_full[phases.reference] = (init_mask.array > 0) if box is None else (init_mask.array > 0) | box
    union = np.any([m.array > 0 for m in segmented.masks], axis=0)
    crop = _bounding_slices(union | np.any([a for a in anchors_full if a is not None], axis=0))
    anchors = None if any(a is None for a in anchors_full) else [a[crop] for a in anchors_full]
    result = filter_phases([m.array[crop] for m in segmented.masks], anchors, window, method, voxelwise,
                           [p.array[crop] for p in segmented.probabilities])
    offset = np.array([s.start for s in crop])
    labels = phases.labels()
    for item in result.removed:
        item["label"] = labels[item["phase"]]
        item["volume_ml"] = round(item["voxels"] * grid.voxel_volume_ml, 3)
        ijk = item.pop("centroid_ijk")
        item["centroid_lps_mm"] = None if ijk is None else np.round(grid.ijk_to_lps(np.add(ijk, offset[::-1])), 1).tolist()
    masks = []
    for mask in result.masks:
        full = np.zeros(grid.array.shape, dtype=np.uint8)
        full[crop] = mask
        masks.append(grid.with_array(full, path=None))
    return masks, result.removed


def _box_region(grid: Volume, box_lps: np.ndarray) -> np.ndarray:
    """Voxels whose centres lie in an LPS box (any direction matrix)."""
    corners = np.array([[a[0], b[1], c[2]] for a in box_lps for b in box_lps for c in box_lps])
    ijk = grid.lps_to_ijk(corners)
    lo = np.clip(np.floor(ijk.min(axis=0)).astype(int), 0, np.array(grid.size_ijk) - 1)
    hi = np.clip(np.ceil(ijk.max(axis=0)).astype(int) + 1, 0, np.array(grid.size_ijk))
    region = np.zeros(grid.array.shape, dtype=bool)
    k, j, i = np.meshgrid(*(np.arange(a, b) for a, b in zip(lo[::-1], hi[::-1])), indexing="ij")
    lps = grid.ijk_to_lps(np.stack([i, j, k], axis=-1).reshape(-1, 3))
    inside = np.all((lps >= box_lps[0]) & (lps <= box_lps[1]), axis=1).reshape(k.shape)
    region[lo[2]:hi[2], lo[1]:hi[1], lo[0]:hi[0]] = inside
    return region


def _bounding_slices(mask: np.ndarray, pad: int = 1) -> tuple[slice, ...]:
    voxels = np.argwhere(mask)
    if len(voxels) == 0:
        return tuple(slice(0, n) for n in mask.shape)
    lo = np.maximum(voxels.min(axis=0) - pad, 0)
    hi = np.minimum(voxels.max(axis=0) + pad + 1, mask.shape)
    return tuple(slice(a, b) for a, b in zip(lo, hi))


def _report(phases: Phases, engine: Engine | None, propagation: str, segmented: Propagation, masks: list[Volume],
            itv: Volume, removed: list[dict], mip_summary: dict, timings: dict) -> dict:
    labels = phases.labels()
    rows = phase_table(masks, labels, phases.reference)
    for row, raw, seconds, source in zip(rows, segmented.masks, segmented.timings_s, segmented.sources):
        row["raw_volume_ml"] = round(float(raw.array.sum()) * raw.voxel_volume_ml, 3)
        row["from_phase"] = None if source is None else labels[source]
        row["seconds"] = round(seconds, 3)
    empty = sorted({r["phase"] for r in rows if r["volume_ml"] == 0} | set(segmented.empty))
    warnings = list(phases.warnings) + segmented.warnings
    if empty:
        warnings.append("no segmentation in phase(s) " + ", ".join(labels[k] for k in empty)
                        + ": the ITV is the union of the other phases only")
    return {
        "source": phases.source, "phases": len(phases), "reference_phase": labels[phases.reference],
        "propagation": propagation, "engine": None if engine is None else engine.name,
        "weights": None if engine is None else engine.weights_label,
        **(device_info(engine.device) if engine is not None else {"device": None, "gpu": None}),
        "itv_volume_ml": round(float(itv.array.sum()) * itv.voxel_volume_ml, 3),
        "motion_mm": motion_amplitude(rows), "per_phase": rows, "empty_phases": [labels[k] for k in empty],
        "removed_components": removed, "mip_itv": mip_summary,
        "timings_s": {k: round(v, 3) for k, v in timings.items()}, "warnings": warnings,
    }
