"""Leave-one-lesion-out choice of one LiteMedSAM engine option by the click protocol: every box of
rtsam.benchmark_interactive.box_variants and 3 simulated clicks on every tuning case (loco_cases.all_cases)
and the check cases (the demo 4DCT and the inserted nodules: no fold is chosen on them), once per value.

    PYTHONPATH=.:benchmarks python benchmarks/option_loco.py erase_central none 0.5 0.75 0.9
    PYTHONPATH=.:benchmarks python benchmarks/option_loco.py tighten_steps 2 0 1
    PYTHONPATH=.:benchmarks python benchmarks/option_loco.py end_click_area none 1 0.5 --presence on

The first value is the baseline. Per held-out lesion, the value chosen on the other three: the highest
mean Dice at 3 clicks among the values that cost no case and box of theirs more than 0.02 against the
baseline (ties: the baseline). ``--presence on``: with the engine's PRESENCE_RULE. Writes
benchmarks/results/option_loco_<option>[_presence].json (or ``--out``).

``--set NAME=JSON`` fixes another engine option for every value (``--set untightened_margin=null``: the
tightened or the untightened result alone). ``--phantom MANIFEST`` adds the four real lung tumours of
benchmarks/lung_phantom.py as tuning groups (one per patient, so every fold holds out one patient of
eight); ``--reuse REPORT...`` takes the runs earlier reports hold (per case, box and value) instead of
running them again:

    PYTHONPATH=.:benchmarks python benchmarks/option_loco.py tighten_steps 2 0 1 --set untightened_margin=null \
        --phantom /tmp/phantom/manifest.json --reuse benchmarks/results/option_loco_tighten_steps.json \
        --out benchmarks/results/option_loco_tighten_steps_8.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from loco_cases import CASES, all_cases, check_cases, nodule_check_cases, parsed_with_cache, phantom_cases
from rtsam.benchmark_interactive import box_variants, run_interactive
from rtsam.engines.litemedsam import PRESENCE_RULE
from rtsam.engines.registry import load_engine

RESULTS = Path(__file__).resolve().parent / "results"
MAX_LOSS = 0.02


def value_of(text: str):
    return None if text.lower() == "none" else json.loads(text)


def protocol(option: str, value, cases: dict, presence, done: dict, fixed: dict) -> dict:
    """{(case, box): run summary} with the engine's ``option`` at ``value`` (and ``presence`` and the
    ``fixed`` options); the Dice lists ``done`` holds for (case, box, value) are taken, not run again."""
    engine = load_engine("litemedsam", device="cpu", presence=presence, **fixed, **{option: value})
    runs = {}
    for name, case in cases.items():
        for box_name, box in {**box_variants(case["label"]), **case.get("boxes", {})}.items():
            dice = done.get((name, box_name, json.dumps(value)))
            if dice is None:
                run = run_interactive(case["image"], case["label"], engine, clicks=3, box_lps=box)
                dice = [s["dice"] for s in run["steps"]]
            runs[(name, box_name)] = {"group": case["group"], "dice": dice}
            print(option, value, name, box_name, runs[(name, box_name)]["dice"], flush=True)
    return runs


def at_three(run: dict) -> float:
    return run["dice"][min(3, len(run["dice"]) - 1)]


def choose(results: list[tuple], groups: list[str]):
    """The value (of ``results``: (value, runs) pairs, the baseline first) with the best mean Dice at 3
    clicks over ``groups`` costing none of their runs > MAX_LOSS against the baseline."""
    baseline = results[0][1]

    def fine(runs):
        return all(at_three(baseline[key]) - at_three(run) <= MAX_LOSS for key, run in runs.items() if run["group"] in groups)

    def mean(runs):
        return round(float(np.mean([at_three(r) for r in runs.values() if r["group"] in groups])), 4)
    return max(((n, v) for n, (v, runs) in enumerate(results) if fine(runs)),
               key=lambda nv: (mean(results[nv[0]][1]), nv[0] == 0))[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("option", help="a LiteMedSAMEngine keyword argument")
    parser.add_argument("values", nargs="+", help="JSON values (or none), the baseline first")
    parser.add_argument("--presence", choices=("off", "on"), default="off", help="on: the engine's PRESENCE_RULE")
    parser.add_argument("--set", nargs="*", default=[], metavar="NAME=JSON", help="other engine options, fixed")
    parser.add_argument("--phantom", type=Path, help="manifest of benchmarks/lung_phantom.py: four more tuning groups")
    parser.add_argument("--reuse", nargs="*", type=Path, default=[], help="earlier reports whose runs are taken")
    parser.add_argument("--out", type=Path, help="report to write")
    args = parsed_with_cache(parser)
    tuning = phantom_cases(args.phantom) if args.phantom else {}
    groups = [*CASES, *tuning]
    cases = {**all_cases(), **tuning, **check_cases(), **nodule_check_cases()}
    presence = PRESENCE_RULE if args.presence == "on" else None
    done = {(run["case"], run["box"], value): dice for report in args.reuse
            for run in json.loads(report.read_text())["runs"] for value, dice in run["by_value"].items()}
    fixed = {name: value_of(text) for name, text in (item.split("=", 1) for item in args.set)}
    results = [(value, protocol(args.option, value, cases, presence, done, fixed)) for value in map(value_of, args.values)]
    folds = {held: choose(results, [g for g in groups if g != held]) for held in groups}
    folds["all"] = choose(results, groups)
    by_value = {json.dumps(v): runs for v, runs in results}
    table = [{"case": name, "box": box, "held_out_value": folds.get(run["group"], folds["all"]),
              "baseline": run["dice"], "held_out": by_value[json.dumps(folds.get(run["group"], folds["all"]))][(name, box)]["dice"],
              "by_value": {value: runs[(name, box)]["dice"] for value, runs in by_value.items()}}
             for (name, box), run in results[0][1].items()]
    report = {"option": args.option, "presence": args.presence, "fixed": fixed, "values": [v for v, _ in results], "folds": folds,
              "runs": table}
    suffix = "_presence" if presence else ""
    (args.out or RESULTS / f"option_loco_{args.option}{suffix}.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(folds))
    for row in table:
        print(f"{row['case']:13} {row['box']:22} {row['baseline']} -> {row['held_out']}")


if __name__ == "__main__":
    main()
