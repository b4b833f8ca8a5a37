"""Rules replayed offline on loco_collect.py's slice records, and leave-one-case-out selection.

A presence rule (feature, threshold) walks out from the box's middle slice in both directions;
the first propagated slice scoring below the threshold and every slice beyond it are left empty
(this is exactly what the engine does, since a slice's decode depends only on the slice it
propagates from). The CT window rule has no parameter: per box, the window whose middle-slice
mask has the higher ``contrast``.
"""

from __future__ import annotations

import math

import numpy as np

from rtsam.engines.litemedsam_evidence import PRESENCE_FEATURES

THRESHOLDS = [round(t, 2) for t in np.arange(0.0, 0.96, 0.05)]


def middle_slice(run: dict) -> int:
    """The engine's seed slice (SlicePlan.build) of a recorded box run."""
    ks = [s["k"] for s in run["slices"]]
    k0, k1 = min(ks), max(ks)
    lo, hi = run["k_box"]
    hi = min(hi, k1) if math.floor(hi + 1e-6) > k1 else hi
    return int(np.clip(round((max(lo, 0.0) + hi) / 2), k0, k1))


def replay(run: dict, truth_total: int, feature: str | None, threshold: float) -> dict:
    """Dice and margin-slice counts of one box-only run under a presence rule (None: off)."""
    rows = {s["k"]: s for s in run["slices"]}
    mid = middle_slice(run)
    kept = {mid}
    for step in (1, -1):
        k = mid + step
        while k in rows:
            if feature is not None and PRESENCE_FEATURES[feature](rows[k], rows[mid], rows[k - step]) < threshold:
                break
            kept.add(k)
            k += step
    pred = sum(rows[k]["area"] for k in kept)
    inter = sum(rows[k]["inter"] for k in kept)
    margin = [k for k in rows if rows[k]["truth"] == 0]
    return {"dice": 2 * inter / (pred + truth_total), "margin": len(margin),
            "margin_empty": sum(k not in kept or rows[k]["area"] == 0 for k in margin)}


def window_runs(case: dict) -> list[dict]:
    """One run per box: the recorded window run the contrast rule picks (MR: the only one)."""
    by_box: dict[str, list] = {}
    for run in case["runs"]:
        by_box.setdefault(run["box"], []).append(run)
    chosen = []
    for runs in by_box.values():
        chosen.append(max(runs, key=lambda r: next(s["contrast"] for s in r["slices"] if s["k"] == middle_slice(r))))
    return chosen


def score(records: dict, cases: list[str], feature, threshold) -> dict:
    """Box-only Dice (mean over each group's cases and boxes, then over groups) and the fraction
    of margin slices left empty over ``cases`` under one presence rule."""
    outs: dict[str, list] = {}
    for c in cases:
        for run in window_runs(records[c]):
            outs.setdefault(records[c]["group"], []).append(replay(run, records[c]["truth_total"], feature, threshold))
    flat = [o for group in outs.values() for o in group]
    margin = sum(o["margin"] for o in flat)
    return {"dice": float(np.mean([np.mean([o["dice"] for o in group]) for group in outs.values()])),
            "empty_rate": sum(o["margin_empty"] for o in flat) / margin if margin else 1.0}


def choose_presence(records: dict, cases: list[str]) -> tuple:
    """(feature, threshold) with the best box-only Dice on ``cases`` (Dice counts the masks on
    margin slices as false positives); ties go to the higher threshold (emptier margins)."""
    options = [(f, t) for f in PRESENCE_FEATURES for t in THRESHOLDS]
    return max(options, key=lambda o: (round(score(records, cases, *o)["dice"], 4), o[1]))
