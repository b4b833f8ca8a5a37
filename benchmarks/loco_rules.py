"""Rules replayed offline on loco_collect.py's slice records, and leave-one-case-out selection.

A presence rule (litemedsam_presence.PresenceRule) walks out from the box's middle slice in both
directions; where the object ends (the first of ``run`` failing slices in a row), that slice and
every slice beyond it are left empty (this is exactly what the engine does, since a slice's decode
depends only on the slice it propagates from). The CT window rule has no parameter: per box, the
window whose result has the higher quality.
"""

from __future__ import annotations

import math

import numpy as np

from rtsam.engines.litemedsam import QUALITY_TERM
from rtsam.engines.litemedsam_evidence import PRESENCE_FEATURES, result_quality
from rtsam.engines.litemedsam_prep import seed_slice
from rtsam.engines.litemedsam_presence import PresenceRule

THRESHOLDS = [round(t, 2) for t in np.arange(0.0, 0.96, 0.05)]
PAIR_THRESHOLDS = [round(t, 2) for t in np.arange(0.1, 0.96, 0.1)]
# Features not in [0, 1], each with its own thresholds (single conditions; pairs take every other one).
OWN_THRESHOLDS = {"contrast": [round(t, 2) for t in np.arange(0.1, 1.51, 0.1)],
                  "embedding_gap": [round(t, 2) for t in np.arange(-0.3, 0.31, 0.05)]}
PAIR_FEATURES = ("contrast", "contrast_vs_neighbour", "contrast_vs_seed", "likeness_vs_seed", "likeness_gap",
                 "not_growing", "overlap", "embedding_gap")
GUARDS = ((0.0, 0.0), (5.0, 0.0), (0.0, 0.5), (0.0, 0.75))  # (guard_mm, inner)


def middle_slice(run: dict) -> int:
    """The engine's seed slice (SlicePlan.build) of a recorded box run."""
    ks = [s["k"] for s in run["slices"]]
    k0, k1 = min(ks), max(ks)
    lo, hi = run["k_box"]
    hi = min(hi, k1) if math.floor(hi + 1e-6) > k1 else hi
    return seed_slice((max(lo, 0.0) + hi) / 2, k0, k1)


def replay(run: dict, truth_total: int, rule: PresenceRule | None, slice_mm: float = 1.0) -> dict:
    """Dice, margin-slice counts and lesion slices lost of one box-only run under ``rule`` (None: off)."""
    rows = {s["k"]: s for s in run["slices"]}
    mid = middle_slice(run)
    kept = set(rows)
    if rule is not None:
        for step in (1, -1):
            ks = [k for k in range(mid + step, mid + step * len(rows), step) if k in rows]
            fails = [rule.fails(rows[k], rows[mid], rows[k - step], abs(k - mid) * slice_mm, abs(k - mid) / len(ks))
                     for k in ks]
            fails += [rule.edge_fails] * (rule.run - 1)
            end = next((i for i in range(len(ks)) if all(fails[i:i + rule.run])), None)
            if end is not None:
                kept -= set(ks[end:])
    pred = sum(rows[k]["area"] for k in kept)
    inter = sum(rows[k]["inter"] for k in kept)
    margin = [k for k in rows if rows[k]["truth"] == 0]
    return {"dice": 2 * inter / (pred + truth_total), "margin": len(margin),
            "margin_empty": sum(k not in kept or rows[k]["area"] == 0 for k in margin),
            "lesion_lost": sum(k not in kept and rows[k]["inter"] > 0 for k in rows)}


def window_runs(case: dict) -> list[dict]:
    """One run per box: the recorded window run of higher result quality, as the engine picks it (MR: the
    only one)."""
    by_box: dict[str, list] = {}
    for run in case["runs"]:
        by_box.setdefault(run["box"], []).append(run)
    return [max(runs, key=lambda r: result_quality({s["k"]: (s,) for s in r["slices"]}, QUALITY_TERM))
            for runs in by_box.values()]


def group_scores(records: dict, cases: list[str], rule: PresenceRule | None) -> dict:
    """{group: {"dice": [per box and case], "margin", "margin_empty", "lesion_lost"}} over ``cases``."""
    groups: dict[str, dict] = {}
    for c in cases:
        for run in window_runs(records[c]):
            out = replay(run, records[c]["truth_total"], rule, records[c].get("slice_mm", 1.0))
            group = groups.setdefault(records[c]["group"], {"dice": [], "margin": 0, "margin_empty": 0, "lesion_lost": 0})
            group["dice"].append(out["dice"])
            for key in ("margin", "margin_empty", "lesion_lost"):
                group[key] += out[key]
    return groups


def pooled(groups: dict, names) -> dict:
    """Box-only Dice (mean over each group's cases and boxes, then over groups), the fraction of
    margin slices left empty and the lesion slices lost (with any overlap) over groups ``names``."""
    chosen = [groups[g] for g in names if g in groups]
    margin = sum(g["margin"] for g in chosen)
    return {"dice": float(np.mean([np.mean(g["dice"]) for g in chosen])),
            "empty_rate": sum(g["margin_empty"] for g in chosen) / margin if margin else 1.0,
            "lesion_lost": sum(g["lesion_lost"] for g in chosen)}


def score(records: dict, cases: list[str], rule: PresenceRule | None) -> dict:
    """``pooled`` over ``cases`` under one presence rule."""
    groups = group_scores(records, cases, rule)
    return pooled(groups, groups)


def candidate_rules() -> list[PresenceRule]:
    """Single conditions, pairs (a slice fails when both fail, or when either does), each alone or
    needing two failing slices in a row, with and without a guard around the seed (in mm, or a
    fraction of the way to the box's end)."""
    def pair_thresholds(feature):
        return OWN_THRESHOLDS[feature][::2] if feature in OWN_THRESHOLDS else PAIR_THRESHOLDS

    conditions = [(((f, t),), "all") for f in PRESENCE_FEATURES for t in OWN_THRESHOLDS.get(f, THRESHOLDS)]
    conditions += [(((f, t), (g, u)), join) for n, f in enumerate(PAIR_FEATURES) for g in PAIR_FEATURES[n + 1:]
                   for t in pair_thresholds(f) for u in pair_thresholds(g) for join in ("all", "any")]
    shapes = [(1, True), (2, True), (2, False)]
    return [PresenceRule(c, run, guard, edge, join, inner) for c, join in conditions for run, edge in shapes
            for guard, inner in GUARDS]


def choose_presence(scored: list[tuple], groups, baseline: dict, max_drop: float = 0.02,
                    constraints=()) -> PresenceRule | None:
    """Of ``scored`` ((rule, group_scores) pairs), the rule leaving most margin slices empty over
    ``groups`` among those costing no group (of ``groups`` and ``constraints``) more than
    ``max_drop`` box-only Dice against ``baseline`` (group_scores with no rule; Dice counts masks
    on margin slices as false positives); ties go to the higher Dice. None (no rule) when none
    leaves any margin slice empty."""
    def fits(g):
        return all(np.mean(baseline[n]["dice"]) - np.mean(g[n]["dice"]) <= max_drop
                   for n in [*groups, *constraints] if n in g)

    fit = [(rule, pooled(g, groups)) for rule, g in scored if fits(g)]
    best = max(fit, key=lambda rs: (round(rs[1]["empty_rate"], 4), round(rs[1]["dice"], 4)), default=None)
    return None if best is None or best[1]["empty_rate"] == 0 else best[0]


def feature_auc(records: dict) -> dict:
    """Per presence feature: the AUC of telling propagated lesion slices (mask mostly on the lesion)
    from margin slices (no lesion) over ``records``' window runs, and the slice counts."""
    lesion, margin = [], []
    for case in records.values():
        for run in window_runs(case):
            mid = middle_slice(run)
            rows = {s["k"]: s for s in run["slices"]}
            for k, row in rows.items():
                values = {f: fn(row, rows[mid], rows[k - np.sign(k - mid)]) for f, fn in PRESENCE_FEATURES.items()}
                if k != mid and row["truth"] == 0:
                    margin.append(values)
                elif k != mid and row["inter"] > row["area"] / 2:
                    lesion.append(values)
    auc = {f: float(np.mean([(a[f] > b[f]) + 0.5 * (a[f] == b[f]) for a in lesion for b in margin]))
           for f in PRESENCE_FEATURES}
    return {"auc": {f: round(v, 3) for f, v in auc.items()}, "lesion_slices": len(lesion), "margin_slices": len(margin)}
