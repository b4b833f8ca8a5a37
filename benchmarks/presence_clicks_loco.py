"""The presence rules loco_tune.py chose per fold, run through the click protocol: every box of
rtsam.benchmark_interactive.box_variants and 3 simulated clicks on the held-out group's cases (the check
cases, the demo 4DCT and the inserted nodules, under the "all" rule), each against presence off.

    PYTHONPATH=.:benchmarks python benchmarks/presence_clicks_loco.py [--folds plain|with_checks] [--groups G...] \
        [--source REPORT] [--phantom MANIFEST] [--out F]
writes benchmarks/results/presence_clicks_loco_<folds>.json (``--groups``: re-runs those groups' cases only,
keeping the other cases' results). ``--source``: the report holding the folds' ``presence_folds``
(default loco_tune.json; presence_phantom_loco.json for the eight-patient folds, with ``--phantom`` adding
benchmarks/lung_phantom.py's four patients as cases).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from loco_cases import all_cases, check_cases, nodule_check_cases, parsed_with_cache, phantom_cases
from rtsam.benchmark_interactive import box_variants, run_interactive
from rtsam.engines.litemedsam_presence import PresenceRule
from rtsam.engines.registry import load_engine

RESULTS = Path(__file__).resolve().parent / "results"


def rule_of(fields: dict | None) -> PresenceRule | None:
    if fields is None:
        return None
    return PresenceRule(**{**fields, "conditions": tuple(tuple(c) for c in fields["conditions"])})


def protocol(case: dict, rule: PresenceRule | None) -> dict:
    """{box: {"dice" per step, "margin_slices" after the box}} of one case under ``rule``."""
    engine = load_engine("litemedsam", presence=rule)
    runs = {}
    for box_name, box in {**box_variants(case["label"]), **case.get("boxes", {})}.items():
        run = run_interactive(case["image"], case["label"], engine, clicks=3, box_lps=box)
        runs[box_name] = {"dice": [round(s["dice"], 4) for s in run["steps"]], "margin_slices": run["margin_slices"]}
    return runs


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--folds", default="plain", choices=("plain", "with_checks"))
    parser.add_argument("--groups", nargs="*", help="re-run only these groups (lung2, ..., demo_4dct, nodules)")
    parser.add_argument("--source", type=Path, default=RESULTS / "loco_tune.json", help="the report of the folds")
    parser.add_argument("--phantom", type=Path, help="the lung phantom's manifest: its patients are cases too")
    parser.add_argument("--out", type=Path, help="default: results/presence_clicks_loco_<folds>.json")
    args = parsed_with_cache(parser)
    folds = json.loads(args.source.read_text())["presence_folds"][args.folds]
    out_path = args.out or RESULTS / f"presence_clicks_loco_{args.folds}.json"
    report = json.loads(out_path.read_text()) if args.groups and out_path.exists() else {}
    cases = {**all_cases(), **check_cases(), **nodule_check_cases(),
             **(phantom_cases(args.phantom) if args.phantom else {})}
    for name, case in cases.items():
        if args.groups and case["group"] not in args.groups:
            continue
        fold = folds.get(case["group"], folds["all"])
        report[name] = {"rule": fold["rule"], "off": protocol(case, None),
                        "rule_on": protocol(case, rule_of(fold["fields"]))}
        for box, off in report[name]["off"].items():
            on = report[name]["rule_on"][box]
            print(f"{name:13} {box:22} {off['dice']} -> {on['dice']}  margin empty "
                  f"{off['margin_slices']['empty']}/{off['margin_slices']['count']} -> "
                  f"{on['margin_slices']['empty']}/{on['margin_slices']['count']}", flush=True)
        out_path.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
