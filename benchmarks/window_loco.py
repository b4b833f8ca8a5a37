"""The CT window rule chosen leave-one-patient-out over five CT patients: lung2 (with its two 3-slice ends)
and the four lung tumours of benchmarks/lung_phantom.py.

    PYTHONPATH=.:benchmarks python benchmarks/loco_collect.py --phantom MANIFEST   # their slice records
    PYTHONPATH=.:benchmarks python benchmarks/window_loco.py

Each box was predicted box-only under both windows (loco_collect.py). A rule picks one of the two per box:
always lung, always soft tissue, or the window whose result has the higher cue, where a cue is a quality term
(litemedsam_evidence.QUALITY_TERMS) over the whole result (area-weighted, as the engine's quality) or on the
box's middle slice only. The engine's rule is "quality" with its QUALITY_TERM. Each patient is scored with
the rule of highest mean box-only Dice (mean over the other patients of each one's mean over its boxes);
the demo 4DCT and the inserted nodules are checks, scored with the rule chosen on all five.
Writes benchmarks/results/window_loco.json.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from loco_rules import middle_slice, replay
from rtsam.engines.litemedsam import QUALITY_TERM
from rtsam.engines.litemedsam_evidence import QUALITY_TERMS, result_quality

RESULTS = Path(__file__).resolve().parent / "results"
WINDOWS = ("lung", "soft-tissue")


def cue(run: dict, rule: str) -> float:
    """The value a rule compares between the two windows' results of one box."""
    kind, term = rule.split(" ", 1)
    if kind == "quality":
        return result_quality({s["k"]: (s,) for s in run["slices"]}, term)
    middle = {s["k"]: s for s in run["slices"]}[middle_slice(run)]
    return QUALITY_TERMS[term](middle) if middle["area"] else 0.0


def rules() -> list[str]:
    return [f"always {w}" for w in WINDOWS] + [f"{kind} {t}" for kind in ("quality", "middle") for t in QUALITY_TERMS]


def box_dice(case: dict, rule: str) -> dict[str, float]:
    """{box: box-only Dice} of one case under ``rule``."""
    by_box: dict[str, dict] = {}
    for run in case["runs"]:
        by_box.setdefault(run["box"], {})[run["window"]] = run
    out = {}
    for box, runs in by_box.items():
        if rule.startswith("always"):
            run = runs[rule.split(" ", 1)[1]]
        else:
            run = max((runs[w] for w in WINDOWS), key=lambda r: cue(r, rule))
        out[box] = replay(run, case["truth_total"], None, case.get("slice_mm", 1.0))["dice"]
    return out


def group_means(cases: dict, rule: str) -> dict[str, float]:
    """{group: mean box-only Dice over its cases and boxes} under ``rule``."""
    values: dict[str, list] = {}
    for case in cases.values():
        values.setdefault(case["group"], []).extend(box_dice(case, rule).values())
    return {g: float(np.mean(v)) for g, v in values.items()}


def main() -> None:
    lesions = json.loads((RESULTS / "loco_slices.json").read_text())
    cases = {n: c for n, c in lesions.items() if c["group"] == "lung2"}
    cases.update(json.loads((RESULTS / "loco_slices_phantom.json").read_text()))
    checks = {**json.loads((RESULTS / "loco_checks.json").read_text()),
              **json.loads((RESULTS / "loco_nodules.json").read_text())}
    table = {rule: {"tuning": group_means(cases, rule), "checks": group_means(checks, rule)} for rule in rules()}
    groups = sorted(table[rules()[0]]["tuning"])
    shipped = f"quality {QUALITY_TERM}"

    def chosen(on: list[str]) -> str:
        return max(rules(), key=lambda r: (round(float(np.mean([table[r]["tuning"][g] for g in on])), 4), r == shipped))

    folds = {g: chosen([h for h in groups if h != g]) for g in groups}
    folds["all"] = chosen(groups)
    report = {"rules": table, "folds": folds,
              "held_out": {g: {"rule": folds[g], "dice": table[folds[g]]["tuning"][g],
                               "engine": table[shipped]["tuning"][g]} for g in groups},
              "checks": {g: {"rule": folds["all"], "dice": d, "engine": table[shipped]["checks"][g]}
                         for g, d in table[folds["all"]]["checks"].items()}}
    (RESULTS / "window_loco.json").write_text(json.dumps(report, indent=1))
    for rule, t in table.items():
        print(f"{rule:40}", " ".join(f"{g} {v:.3f}" for g, v in {**t["tuning"], **t["checks"]}.items()))
    for g, h in {**report["held_out"], **report["checks"]}.items():
        print(f"held out {g:10} {h['rule']:40} {h['dice']:.3f} (engine {h['engine']:.3f})")


if __name__ == "__main__":
    main()
