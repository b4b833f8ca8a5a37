"""Zooming LiteMedSAM in on small boxes (``ZoomRule``), chosen leave-one-lesion-out.

Each case (the four lesions and their sub-cases, the demo 4DCT's reference phase and the inserted nodules)
runs every box of rtsam.benchmark_interactive.box_variants through 3 simulated clicks, without zoom and
with each zoom factor applied to every box (``collect``). A rule "zoom boxes under T mm with factor f"
then gives, per run, the zoomed or the plain figures by the run's box side, so every (T, f) is scored
without re-running (``choose``): each lesion group's rule is chosen on the other three groups (the rule
whose worst run at 3 clicks loses least against no zoom, then the highest mean Dice at 3 clicks); the
demo 4DCT and the nodules are checks, scored under the rule chosen on all four groups.

    PYTHONPATH=.:benchmarks python benchmarks/zoom_loco.py collect [--factors 2 3] [--groups G...] [--out F]
    PYTHONPATH=.:benchmarks python benchmarks/zoom_loco.py merge --parts F...
    PYTHONPATH=.:benchmarks python benchmarks/zoom_loco.py choose
writes / reads benchmarks/results/zoom_loco.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from loco_cases import CASES, all_cases, check_cases, nodule_check_cases, parsed_with_cache
from rtsam.benchmark_interactive import box_variants, run_interactive
from rtsam.engines.litemedsam_prep import ZoomRule, box_voxel_extent, slice_extent
from rtsam.engines.registry import load_engine

RESULTS = Path(__file__).resolve().parent / "results" / "zoom_loco.json"
THRESHOLDS_MM = (0.0, 15.0, 20.0, 25.0, 30.0, 35.0, 40.0, 50.0, 60.0, float("inf"))  # 0: never zoom
STEP = 3  # the click step rules are chosen at


def box_side_mm(image, box_lps) -> float:
    """The longer in-plane side of a box as the engine's zoom rule measures it."""
    box = slice_extent(image, *box_voxel_extent(image, np.asarray(box_lps, dtype=float))).box
    return float(max((box[2] - box[0]) * image.spacing[0], (box[3] - box[1]) * image.spacing[1]))


def collect(factors: list[float], groups: list[str] | None, out: Path) -> None:
    """Runs the configurations not yet in ``out`` (a parallel run writes its own ``out``; ``merge`` joins them)."""
    report = json.loads(out.read_text()) if out.exists() else {}
    configs = {"off": None, **{f"zoom x{f:g}": ZoomRule(float("inf"), f) for f in factors}}
    for name, case in {**all_cases(), **check_cases(), **nodule_check_cases()}.items():
        if groups and case["group"] not in groups:
            continue
        entry = report.setdefault(name, {"group": case["group"], "runs": {}})
        for box_name, box in {**box_variants(case["label"]), **case.get("boxes", {})}.items():
            run = entry["runs"].setdefault(box_name, {"side_mm": round(box_side_mm(case["image"], box), 2)})
            for config, zoom in configs.items():
                if config in run:
                    continue
                engine = load_engine("litemedsam", zoom=zoom)
                result = run_interactive(case["image"], case["label"], engine, clicks=STEP, box_lps=box)
                run[config] = {"dice": [round(s["dice"], 4) for s in result["steps"]],
                               "margin_slices": result["margin_slices"]}
            print(name, box_name, {c: run[c]["dice"] for c in configs}, flush=True)
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


def scored(runs: list[dict], threshold: float, factor: str) -> list[float]:
    """Dice at STEP of each run under "zoom boxes under ``threshold`` mm with ``factor``"."""
    return [run[factor if run["side_mm"] < threshold else "off"]["dice"][-1] for run in runs]


def choose() -> None:
    report = json.loads(RESULTS.read_text())
    factors = sorted({c for entry in report.values() for run in entry["runs"].values() for c in run} - {"side_mm", "off"})
    rules = [(t, f) for t in THRESHOLDS_MM for f in factors]

    def runs_of(groups) -> list[dict]:
        return [run for entry in report.values() if entry["group"] in groups for run in entry["runs"].values()]

    def choice(groups) -> tuple[float, str]:
        runs = runs_of(groups)
        off = scored(runs, 0.0, factors[0])

        def key(rule):
            dice = scored(runs, *rule)
            return (min(d - o for d, o in zip(dice, off)), float(np.mean(dice)), -rule[0])
        return max(rules, key=key)

    folds = {}
    for held in (*CASES, "all"):
        rule = choice([g for g in CASES if g != held])
        scored_groups = [held] if held != "all" else ["demo_4dct", "nodules"]
        folds[held] = {"threshold_mm": rule[0], "factor": rule[1], "cases": {}}
        for name, entry in report.items():
            if entry["group"] not in scored_groups:
                continue
            runs = entry["runs"]
            folds[held]["cases"][name] = {
                box: {"side_mm": run["side_mm"], "off": run["off"]["dice"],
                      "rule": run[rule[1] if run["side_mm"] < rule[0] else "off"]["dice"]}
                for box, run in runs.items()}
        print(f"held out {held}: zoom under {rule[0]:g} mm, {rule[1]}")
        for name, boxes in folds[held]["cases"].items():
            off = [b["off"][-1] for b in boxes.values()]
            on = [b["rule"][-1] for b in boxes.values()]
            print(f"  {name:13} {STEP} clicks {np.mean(off):.3f} -> {np.mean(on):.3f} "
                  f"(worst run {min(a - b for a, b in zip(on, off)):+.3f}); box-only "
                  f"{np.mean([b['off'][0] for b in boxes.values()]):.3f} -> "
                  f"{np.mean([b['rule'][0] for b in boxes.values()]):.3f}")
    report_path = RESULTS.with_name("zoom_loco_folds.json")
    report_path.write_text(json.dumps(folds, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=("collect", "merge", "choose"))
    parser.add_argument("--out", type=Path, default=RESULTS, help="collect: the file to write")
    parser.add_argument("--parts", nargs="*", type=Path, default=[], help="merge: collect outputs to join")
    parser.add_argument("--factors", nargs="*", type=float, default=[3.0])
    parser.add_argument("--groups", nargs="*", help="collect only these groups (lung2, ..., demo_4dct, nodules)")
    args = parsed_with_cache(parser)
    if args.command == "collect":
        collect(args.factors, args.groups, args.out)
    elif args.command == "merge":
        merge(args.parts)
    else:
        choose()


if __name__ == "__main__":
    main()
