"""Zooming LiteMedSAM in on small boxes (``ZoomRule``), chosen leave-one-lesion-out.

Each case (the four lesions and their sub-cases, the demo 4DCT's reference phase and the inserted nodules)
runs every box of rtsam.benchmark_interactive.box_variants through 3 simulated clicks, without zoom and
with each zoom factor applied to every box (``collect``). A rule "zoom boxes under T grid pixels with
factor f" (optionally: "... and keep the zoomed result only when its box-only quality is higher", as the
CT window is chosen) then gives, per run, the zoomed or the plain figures, so every rule is scored without
re-running (``choose``): each lesion group's rule is chosen on the other three groups (among the rules
under which no run loses more than MAX_LOSS Dice at 3 clicks against no zoom, the highest mean gain, then
the smaller threshold); the demo 4DCT and the nodules are checks, scored under the rule chosen on all four.

    PYTHONPATH=.:benchmarks python benchmarks/zoom_loco.py collect [--factors 3 5] [--groups G...] \
        [--boxes B...] [--out F]
    PYTHONPATH=.:benchmarks python benchmarks/zoom_loco.py merge --parts F...
    PYTHONPATH=.:benchmarks python benchmarks/zoom_loco.py choose
writes / reads benchmarks/results/zoom_loco.json (choose: zoom_loco_folds.json).

``choose-ct`` replays CT-only rules on a report collected with today's engine (``collect --groups lung2 nodules
demo_4dct --out benchmarks/results/zoom_loco_ct.json``): MR is never zoomed (its folds above lost), and no real
CT patient but lung2 has a box under THRESHOLDS_PX[-1] grid pixels (the lung phantom's four tumours: 63-150), so
the units left out in turn are each inserted nodule, lung2 (with its sub-cases) and the demo 4DCT; each unit is
scored under the rule chosen on the others by the criterion above (every in-sample run counts, real ones too).
The nodules share lung2's image and tissue, so these folds check rules on other nodules, not on another
patient. Writes zoom_loco_ct_folds.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from loco_cases import CASES, all_cases, check_cases, nodule_check_cases, parsed_with_cache
from rtsam.benchmark_interactive import box_variants, run_interactive
from rtsam.engines.litemedsam_prep import (Letterbox, ZoomRule, box_voxel_extent, detect_modality, grid_side,
                                          slice_extent)
from rtsam.engines.registry import load_engine

RESULTS = Path(__file__).resolve().parent / "results" / "zoom_loco.json"
THRESHOLDS_PX = (0.0, 15.0, 20.0, 25.0, 30.0, 35.0, 40.0, 50.0, 60.0)  # 0: never zoom
STEP = 3  # the click step rules are chosen at
MAX_LOSS = 0.02  # issue 17's bound on what a case may lose at 3 clicks, here held for every run


def box_side_px(image, box_lps) -> float:
    """The longer in-plane side of a box in 256-grid pixels, as the engine's zoom rule measures it."""
    box = slice_extent(image, *box_voxel_extent(image, np.asarray(box_lps, dtype=float))).box
    return grid_side(box, Letterbox(tuple(image.array.shape[1:])))


def collect(factors: list[float], groups: list[str] | None, boxes: list[str] | None, out: Path) -> None:
    """Runs the configurations not yet in ``out`` (a parallel run writes its own ``out``; ``merge`` joins them);
    boxes of THRESHOLDS_PX[-1] grid pixels or more run without zoom only (no rule zooms them)."""
    report = json.loads(out.read_text()) if out.exists() else {}
    configs = {"off": None, **{f"zoom x{f:g}": ZoomRule(float("inf"), f) for f in factors}}
    for name, case in {**all_cases(), **check_cases(), **nodule_check_cases()}.items():
        if groups and case["group"] not in groups:
            continue
        entry = report.setdefault(name, {"group": case["group"], "runs": {}})
        entry["modality"] = detect_modality(case["image"])
        for box_name, box in {**box_variants(case["label"]), **case.get("boxes", {})}.items():
            if boxes and box_name not in boxes:
                continue
            run = entry["runs"].setdefault(box_name, {})
            run["side_px"] = round(box_side_px(case["image"], box), 2)
            for config, zoom in configs.items():
                if "quality" in run.get(config, {}) or (zoom and run["side_px"] >= THRESHOLDS_PX[-1]):
                    continue
                engine = load_engine("litemedsam", zoom=zoom)
                result = run_interactive(case["image"], case["label"], engine, clicks=STEP, box_lps=box)
                run[config] = {"dice": [s["dice"] for s in result["steps"]],
                               "quality": [s["quality"] for s in result["steps"]],
                               "margin_slices": result["margin_slices"]}
            print(name, box_name, {c: run[c]["dice"] for c in configs if c in run}, flush=True)
            out.write_text(json.dumps(report, indent=1))


def merge(parts: list[Path]) -> None:
    """Joins parallel ``collect`` outputs into RESULTS."""
    report = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    for part in parts:
        for name, entry in json.loads(part.read_text()).items():
            runs = report.setdefault(name, {"group": entry["group"], "runs": {}})["runs"]
            for box, run in entry["runs"].items():
                runs.setdefault(box, {}).update(run)
    RESULTS.write_text(json.dumps(report, indent=1))


def picked(run: dict, rule: tuple) -> str:
    """The configuration a run gets under ``rule`` (threshold in grid pixels, factor, by quality): the zoom
    below the threshold, with ``by quality`` only when its box-only result has the higher quality."""
    threshold, factor, by_quality = rule
    if run["side_px"] >= threshold:
        return "off"
    if by_quality and run[factor]["quality"][0] <= run["off"]["quality"][0]:
        return "off"
    return factor


def describe(rule: tuple) -> str:
    threshold, factor, by_quality = rule
    return f"{factor} under {threshold:g} grid pixels" + (", the view of higher quality" if by_quality else "")


def candidate_rules(report: dict) -> list[tuple]:
    factors = sorted({c for entry in report.values() for run in entry["runs"].values() for c in run
                      if c.startswith("zoom")})
    return [(t, f, q) for t in THRESHOLDS_PX for f in factors for q in (False, True)]


def best_rule(rules: list[tuple], runs: list[dict]) -> tuple:
    """Of ``rules``, the one under which no run of ``runs`` loses more than MAX_LOSS at STEP clicks, with the
    highest mean gain, then the smaller threshold, then without the quality choice."""
    def key(rule):
        gains = [run[picked(run, rule)]["dice"][-1] - run["off"]["dice"][-1] for run in runs]
        return (min(gains) >= -MAX_LOSS, float(np.mean(gains)), -rule[0], not rule[2])
    return max(rules, key=key)


def held_out_lines(name: str, entry: dict, rule: tuple) -> dict:
    """Per box of one case: its side, the view ``rule`` gives it and Dice without zoom and with the rule."""
    boxes = {box: {"side_px": run["side_px"], "view": picked(run, rule), "off": run["off"]["dice"],
                   "rule": run[picked(run, rule)]["dice"]} for box, run in entry["runs"].items()}
    for box, b in boxes.items():
        print(f"  {name:13} {box:22} {b['side_px']:5.1f} px {b['view']:8} box {b['off'][0]:.3f} -> "
              f"{b['rule'][0]:.3f}, {STEP} clicks {b['off'][-1]:.3f} -> {b['rule'][-1]:.3f}")
    return boxes


def choose_ct(path: Path) -> None:
    report = {name: e for name, e in json.loads(path.read_text()).items() if e["modality"] == "CT"}
    rules = candidate_rules(report)
    units = {name: [name] if e["group"] == "nodules" else [n for n, f in report.items() if f["group"] == e["group"]]
             for name, e in report.items() if e["group"] == "nodules" or name == e["group"]}
    folds = {}
    for unit, members in (*units.items(), ("all", [])):
        runs = [run for name, e in report.items() if name not in members for run in e["runs"].values()]
        rule = best_rule(rules, runs)
        print(f"held out {unit}: {describe(rule)}")
        folds[unit] = {"rule": describe(rule), "threshold_px": rule[0], "factor": rule[1], "by_quality": rule[2],
                       "cases": {name: held_out_lines(name, report[name], rule) for name in members}}
    path.with_name(path.stem + "_folds.json").write_text(json.dumps(folds, indent=1))


def choose() -> None:
    report = json.loads(RESULTS.read_text())
    rules = candidate_rules(report)

    def choice(groups) -> tuple:
        return best_rule(rules, [run for entry in report.values() if entry["group"] in groups
                                 for run in entry["runs"].values()])

    folds = {}
    for held in (*CASES, "all"):
        rule = choice([g for g in CASES if g != held])
        scored_groups = [held] if held != "all" else ["demo_4dct", "nodules"]
        folds[held] = {"rule": describe(rule), "threshold_px": rule[0], "factor": rule[1], "by_quality": rule[2],
                       "cases": {}}
        print(f"held out {held}: {describe(rule)}")
        for name, entry in report.items():
            if entry["group"] in scored_groups:
                folds[held]["cases"][name] = held_out_lines(name, entry, rule)
    RESULTS.with_name("zoom_loco_folds.json").write_text(json.dumps(folds, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=("collect", "merge", "choose", "choose-ct"))
    parser.add_argument("--boxes", nargs="*", help="collect only these boxes (\"margin 5 mm\", ...)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="collect: the file to write; choose-ct: to read")
    parser.add_argument("--parts", nargs="*", type=Path, default=[], help="merge: collect outputs to join")
    parser.add_argument("--factors", nargs="*", type=float, default=[3.0])
    parser.add_argument("--groups", nargs="*", help="collect only these groups (lung2, ..., demo_4dct, nodules)")
    args = parsed_with_cache(parser)
    if args.command == "collect":
        collect(args.factors, args.groups, args.boxes, args.out)
    elif args.command == "merge":
        merge(args.parts)
    elif args.command == "choose":
        choose()
    else:
        choose_ct(args.out)


if __name__ == "__main__":
    main()
