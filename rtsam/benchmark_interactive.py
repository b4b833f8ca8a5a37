"""The interactive protocol: a box from the label plus a margin, then simulated clicks.

After the box, each step adds one click at the centre (largest distance-transform value,
in mm) of the largest error region, positive for a false negative, and records Dice, volume
error, HD95, the result's quality and the time of the step. ``run_case`` runs the protocol for
box margins 0, 3, 5 and 10 mm and a seeded jittered box (each face moved up to 3 mm) on one
image, sharing the slice embeddings; NoC@85 / NoC@90 is the number of clicks to reach that
Dice (capped: clicks + 1 when never reached).
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from .devices import device_info
from .engines.base import Engine, default_presence, is_low_quality
from .engines.litemedsam_prep import box_voxel_extent
from .errors import GeometryError, InputError
from .metrics import dice, hd95_mm, volume_ml
from .prompts.clicks import next_clicks
from .session import Session
from .volume import Volume

MARGINS_MM = (0.0, 3.0, 5.0, 10.0)
JITTER_MM = 3.0
NOC_LEVELS = (0.85, 0.90)


def box_from_label(label: Volume, margin_mm: float = 5.0) -> np.ndarray:
    """Axis-aligned LPS box ([[min], [max]]) around the label's voxel centres, grown by ``margin_mm``."""
    kji = np.argwhere(label.array > 0)
    if kji.size == 0:
        raise InputError("label is empty: no box can be derived from it", label.metadata.get("path"))
    lo, hi = kji.min(axis=0)[::-1], kji.max(axis=0)[::-1]
    corners = np.array([[a[0], b[1], c[2]] for a in (lo, hi) for b in (lo, hi) for c in (lo, hi)], dtype=float)
    lps = label.ijk_to_lps(corners)
    return np.stack([lps.min(axis=0) - margin_mm, lps.max(axis=0) + margin_mm])


def jittered_box(label: Volume, seed: int = 0, jitter_mm: float = JITTER_MM, margin_mm: float = 5.0) -> np.ndarray:
    """The label box + ``margin_mm`` with each of its 6 faces moved by up to ``jitter_mm`` (seeded)."""
    shift = np.random.default_rng(seed).uniform(-jitter_mm, jitter_mm, size=(2, 3))
    return box_from_label(label, margin_mm) + shift


def check_pair(image: Volume, label: Volume) -> np.ndarray:
    """The label's truth mask, after checking it is on the image grid and not empty."""
    if not image.same_grid(label):
        raise GeometryError("label grid does not match the image grid", label.metadata.get("path"))
    truth = label.array > 0
    if not truth.any():
        raise InputError("label is empty: nothing to segment", label.metadata.get("path"))
    return truth


def run_interactive(image: Volume, label: Volume, engine: Engine, clicks: int = 3, margin_mm: float = 5.0,
                    box_lps=None, keep_masks: bool = False, context=None) -> dict:
    """Dice (and volume error, HD95, quality, timings) after the box and after each simulated click
    (each step's mask as ``"mask"`` with ``keep_masks``); ``context``: an open engine context to reuse."""
    truth = check_pair(image, label)
    truth_volume = label.with_array(truth.astype(np.uint8))
    session = Session(image, engine, context)
    box = box_from_label(label, margin_mm) if box_lps is None else np.asarray(box_lps, dtype=float)
    session.set_box(box)
    steps = [_step(session, truth_volume, "box", None)]
    for n in range(clicks):
        found = next_clicks(steps[-1]["_mask"], truth, n=1, spacing=image.spacing, mode="center")
        if not found:
            break
        click = found[0].to_click(image)
        session.add_click(click.lps, click.positive)
        steps.append(_step(session, truth_volume, f"click {n + 1}", click))
    margin_slices = empty_margin_slices(steps[0]["_mask"], truth, image, box)
    for step in steps:
        mask = step.pop("_mask")
        if keep_masks:
            step["mask"] = mask
    dices = [s["dice"] for s in steps]
    return {"engine": engine.name, "weights": engine.weights_label, "presence": default_presence(engine),
            "zoom": zoom_setting(engine), **device_info(engine.device), "box_lps": session.prompt.box_lps,
            "steps": steps, "margin_slices": margin_slices,
            **{f"noc{round(level * 100)}": noc(dices, level, clicks) for level in NOC_LEVELS}}


def zoom_setting(engine: Engine) -> dict | None:
    """The litemedsam engine's zoom rule as fields (None: it sees whole slices, or has no such rule)."""
    zoom = getattr(engine, "zoom", None)
    return None if zoom is None else dataclasses.asdict(zoom)


def noc(dices: list[float], level: float, cap: int) -> int:
    """Clicks needed to reach ``level`` (0: the box alone), ``cap + 1`` when never reached."""
    return next((n for n, d in enumerate(dices) if d >= level), cap + 1)


def empty_margin_slices(mask: np.ndarray, truth: np.ndarray, image: Volume, box_lps: np.ndarray) -> dict:
    """Box-only result on the slices inside the box that hold no truth: how many, how many stay empty."""
    lo, hi = box_voxel_extent(image, np.asarray(box_lps, dtype=float))
    k0, k1 = max(int(np.ceil(lo[2] - 1e-6)), 0), min(int(np.floor(hi[2] + 1e-6)), image.array.shape[0] - 1)
    margin = [z for z in range(k0, k1 + 1) if not truth[z].any()]
    return {"count": len(margin), "empty": sum(not mask[z].any() for z in margin)}


def _step(session: Session, truth: Volume, name: str, click) -> dict:
    start = time.perf_counter()
    result = session.predict()
    elapsed = (time.perf_counter() - start) * 1000.0
    predicted = result.mask
    volume, true_volume = volume_ml(predicted), volume_ml(truth)
    return {
        "step": name,
        "click_lps": None if click is None else [round(v, 1) for v in click.lps],
        "positive": None if click is None else click.positive,
        "dice": round(dice(predicted, truth), 4),
        "volume_error_ml": round(volume - true_volume, 3),
        "volume_error_pct": round(100.0 * (volume - true_volume) / true_volume, 1),
        "hd95_mm": round(hd95_mm(predicted, truth), 2),
        "quality": None if result.quality is None else round(result.quality, 4),
        "low_quality": is_low_quality(result.quality),
        "total_ms": round(elapsed, 1),
        **{k: round(v, 1) for k, v in result.timings_ms.items()},
        "_mask": predicted.array > 0,
    }


def box_variants(label: Volume, margins=MARGINS_MM, jitter_mm: float = JITTER_MM, seed: int = 0) -> dict:
    """{name: LPS box}: the label box + each margin, and one jittered box (when ``jitter_mm`` > 0)."""
    boxes = {f"margin {m:g} mm": box_from_label(label, m) for m in margins}
    if jitter_mm > 0:
        boxes[f"jitter {jitter_mm:g} mm (seed {seed})"] = jittered_box(label, seed, jitter_mm)
    return boxes


def run_case(image: Volume, label: Volume, engine: Engine, clicks: int = 10, margins=MARGINS_MM,
             jitter_mm: float = JITTER_MM, seed: int = 0, progress=None) -> dict:
    """The protocol for every box of ``box_variants`` on one image (one engine context, so the
    slice embeddings are computed once)."""
    check_pair(image, label)
    context = engine.open(image)
    runs = []
    for name, box in box_variants(label, margins, jitter_mm, seed).items():
        if progress is not None:
            progress(name)
        run = run_interactive(image, label, engine, clicks=clicks, box_lps=box, context=context)
        runs.append({"box": name, **{k: run[k] for k in ("box_lps", "steps", "margin_slices", "noc85", "noc90")}})
    return {"engine": engine.name, "weights": engine.weights_label, "presence": default_presence(engine),
            "zoom": zoom_setting(engine),
            "truth_ml": round(volume_ml(label.with_array((label.array > 0).astype(np.uint8))), 3), "runs": runs}
