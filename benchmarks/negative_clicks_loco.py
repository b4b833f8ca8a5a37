"""Leave-one-lesion-out choice of LiteMedSAM's ERASE_CENTRAL (a negative click in the middle of a blob on
the object's outermost slice erases it): the protocol (every box of rtsam.benchmark_interactive.box_variants,
3 simulated clicks) on every tuning case (loco_cases.all_cases) and the demo 4DCT check case, per value.

    PYTHONPATH=.:benchmarks python benchmarks/negative_clicks_loco.py [--cache /tmp/rtsam_embeddings]

Per held-out lesion, the value chosen on the other three: the highest mean Dice at 3 clicks among the
values that cost no case and box of theirs more than 0.02 against erasing never (ties: never).
Writes benchmarks/results/negative_clicks_loco.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from loco_cases import CASES, all_cases, check_cases, parsed_with_cache
from rtsam.benchmark_interactive import box_variants, run_interactive
from rtsam.engines.registry import load_engine

RESULTS = Path(__file__).resolve().parent / "results"
VALUES = (None, 0.5, 0.75, 0.9)
MAX_LOSS = 0.02


def protocol(central: float | None, cases: dict) -> dict:
    """{(case, box): run summary} with erasing at ``central`` (None: never)."""
    engine = load_engine("litemedsam", device="cpu", erase_central=central)
    runs = {}
    for name, case in cases.items():
        for box_name, box in {**box_variants(case["label"]), **case.get("boxes", {})}.items():
            run = run_interactive(case["image"], case["label"], engine, clicks=3, box_lps=box)
            runs[(name, box_name)] = {"group": case["group"], "dice": [s["dice"] for s in run["steps"]]}
            print(central, name, box_name, runs[(name, box_name)]["dice"], flush=True)
    return runs


def at_three(run: dict) -> float:
    return run["dice"][min(3, len(run["dice"]) - 1)]


def choose(results: dict, groups: list[str]):
    """The value with the best mean Dice at 3 clicks over ``groups`` costing no run of theirs > MAX_LOSS."""
    never = results[None]

    def fine(value):
        return all(at_three(never[key]) - at_three(run) <= MAX_LOSS
                   for key, run in results[value].items() if run["group"] in groups)

    def mean(value):
        return round(float(np.mean([at_three(r) for r in results[value].values() if r["group"] in groups])), 4)
    return max((v for v in VALUES if fine(v)), key=lambda v: (mean(v), v is None))


def main() -> None:
    parser = argparse.ArgumentParser()
    parsed_with_cache(parser)
    cases = {**all_cases(), **check_cases()}
    results = {value: protocol(value, cases) for value in VALUES}
    folds = {held: choose(results, [g for g in CASES if g != held]) for held in CASES}
    folds["all"] = choose(results, list(CASES))
    table = [{"case": name, "box": box, "held_out_value": folds.get(run["group"], folds["all"]),
              "never": results[None][(name, box)]["dice"],
              "held_out": results[folds.get(run["group"], folds["all"])][(name, box)]["dice"]}
             for (name, box), run in results[None].items()]
    report = {"folds": folds, "runs": table}
    (RESULTS / "negative_clicks_loco.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(folds))
    for row in table:
        print(f"{row['case']:13} {row['box']:22} {row['never']} -> {row['held_out']}")


if __name__ == "__main__":
    main()
