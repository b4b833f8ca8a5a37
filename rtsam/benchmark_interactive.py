"""The interactive protocol: a box from the label plus a margin, then simulated clicks.

After the box, each step adds one click at the centre (largest distance-transform value,
in mm) of the largest error region, positive for a false negative, and records the Dice.
"""

from __future__ import annotations

import time

import numpy as np

from .devices import device_info
from .engines.base import Engine
from .errors import GeometryError, InputError
from .metrics import dice
from .prompts.clicks import next_clicks
from .session import Session
from .volume import Volume

def box_from_label(label: Volume, margin_mm: float = 5.0) -> np.ndarray:
    """Axis-aligned LPS box ([[min], [max]]) around the label's voxel centres, grown by ``margin_mm``."""
    kji = np.argwhere(label.array > 0)
    if kji.size == 0:
        raise InputError("label is empty: no box can be derived from it", label.metadata.get("path"))
    lo, hi = kji.min(axis=0)[::-1], kji.max(axis=0)[::-1]
    corners = np.array([[a[0], b[1], c[2]] for a in (lo, hi) for b in (lo, hi) for c in (lo, hi)], dtype=float)
    lps = label.ijk_to_lps(corners)
    return np.stack([lps.min(axis=0) - margin_mm, lps.max(axis=0) + margin_mm])


def run_interactive(image: Volume, label: Volume, engine: Engine, clicks: int = 3, margin_mm: float = 5.0,
                    box_lps=None, keep_masks: bool = False) -> dict:
    """Dice after the box and after each simulated click, with timings (and each step's mask
    as ``"mask"`` with ``keep_masks``)."""
    if not image.same_grid(label):
        raise GeometryError("label grid does not match the image grid", label.metadata.get("path"))
    truth = label.array > 0
    truth_volume = label.with_array(truth.astype(np.uint8))
    session = Session(image, engine)
    session.set_box(box_from_label(label, margin_mm) if box_lps is None else box_lps)
    steps = [_step(session, truth_volume, "box", None)]
    for n in range(clicks):
        found = next_clicks(steps[-1]["_mask"], truth, n=1, spacing=image.spacing, mode="center")
        if not found:
            break
        click = found[0].to_click(image)
        session.add_click(click.lps, click.positive)
        steps.append(_step(session, truth_volume, f"click {n + 1}", click))
    for step in steps:
        mask = step.pop("_mask")
        if keep_masks:
            step["mask"] = mask
    return {"engine": engine.name, "weights": engine.weights_label, **device_info(engine.device),
            "box_lps": session.prompt.box_lps, "steps": steps}


def _step(session: Session, truth: Volume, name: str, click) -> dict:
    start = time.perf_counter()
    result = session.predict()
    mask = result.mask.array > 0
    return {
        "step": name,
        "click_lps": None if click is None else [round(v, 1) for v in click.lps],
        "positive": None if click is None else click.positive,
        "dice": round(dice(result.mask, truth), 4),
        "quality": None if result.quality is None else round(result.quality, 4),
        "total_ms": round((time.perf_counter() - start) * 1000.0, 1),
        **{k: round(v, 1) for k, v in result.timings_ms.items()},
        "_mask": mask,
    }
