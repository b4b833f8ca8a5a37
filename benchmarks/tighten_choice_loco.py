"""Choosing per box between the tightened (2 steps) and the untightened LiteMedSAM result by their quality,
leave-one-patient-out over the eight patients (the four lesions, benchmarks/lung_phantom.py's four lung tumours).

The rule: keep the untightened result when its box-only quality exceeds the tightened one's by more than
delta (each picks its CT window as the engine does); the choice then holds through the clicks, as the CT window
does. ``collect`` records both box-only results of every box of benchmark_interactive.box_variants on every
case (tuning cases and checks); ``choose`` replays each delta on option_loco.py's 3-click runs of
``tighten_steps 2 0 1 --set untightened_margin=null`` and chooses it per held-out patient on the other seven
with option_loco.choose: the highest mean Dice at 3 clicks among the deltas under which no run of theirs
loses more than 0.02 against always tightening (ties: always tightening). The demo 4DCT and the inserted nodules are checks, scored under the delta chosen on all.

    PYTHONPATH=.:benchmarks python benchmarks/tighten_choice_loco.py collect --phantom MANIFEST
    PYTHONPATH=.:benchmarks python benchmarks/tighten_choice_loco.py choose \
        --clicks benchmarks/results/option_loco_tighten_steps_8.json

writes benchmarks/results/tighten_choice_boxes.json (collect) and tighten_choice_loco.json (choose).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from loco_cases import CASES, all_cases, check_cases, nodule_check_cases, parsed_with_cache, phantom_cases
from option_loco import MAX_LOSS, choose
from rtsam.benchmark_interactive import box_variants
from rtsam.engines.base import Prompt
from rtsam.engines.registry import load_engine

RESULTS = Path(__file__).resolve().parent / "results"
BOXES = RESULTS / "tighten_choice_boxes.json"
STEPS = (2, 0)  # tightened (the baseline), untightened
DELTAS = (None, 0.0, 0.005, 0.01, 0.015, 0.02, 0.03, 0.05)  # None: always tightened (the baseline)
AT = 3  # the click step option_loco.choose judges


def collect(phantom: Path) -> dict:
    engines = {steps: load_engine("litemedsam", device="cpu", tighten_steps=steps, untightened_margin=None)
               for steps in STEPS}
    cases = {**all_cases(), **phantom_cases(phantom), **check_cases(), **nodule_check_cases()}
    out = {}
    for name, case in cases.items():
        truth = case["label"].array > 0
        contexts = {steps: engine.open(case["image"]) for steps, engine in engines.items()}
        runs = {}
        for box_name, box in {**box_variants(case["label"]), **case.get("boxes", {})}.items():
            runs[box_name] = {}
            for steps, context in contexts.items():
                result = context.predict(Prompt(box_lps=box))
                mask = result.mask.array > 0
                dice = 2 * np.count_nonzero(mask & truth) / (np.count_nonzero(mask) + np.count_nonzero(truth))
                runs[box_name][str(steps)] = {"dice": round(float(dice), 4), "quality": result.quality}
            print(name, box_name, runs[box_name], flush=True)
        out[name] = {"group": case["group"], "runs": runs}
    return out


def chosen_steps(qualities: dict, delta: float | None) -> str:
    """"0" when the untightened result's quality beats the tightened one's by more than ``delta``, else "2"."""
    return "0" if delta is not None and qualities["0"]["quality"] > qualities["2"]["quality"] + delta else "2"


def replay(boxes: dict, clicks: dict, delta: float | None) -> dict:
    """{(case, box): {"group", "dice"}}: the click steps' Dice of the result ``delta`` keeps."""
    return {key: {"group": run["group"], "dice": run["by_value"][chosen_steps(boxes[key[0]]["runs"][key[1]], delta)]}
            for key, run in clicks.items()}


def report(boxes: dict, clicks: dict) -> dict:
    groups = [*CASES, *sorted({r["group"] for r in clicks.values()} - set(CASES) - {"demo_4dct", "nodules"})]
    scored = [(delta, replay(boxes, clicks, delta)) for delta in DELTAS]
    folds = {g: choose(scored, [h for h in groups if h != g]) for g in groups}
    folds["all"] = choose(scored, groups)
    by_delta = dict(scored)
    baseline = by_delta[None]
    rows = []
    for key, run in clicks.items():
        delta = folds.get(run["group"], folds["all"])
        held = by_delta[delta][key]["dice"]
        rows.append({"case": key[0], "box": key[1], "group": run["group"], "delta": delta,
                     "steps": chosen_steps(boxes[key[0]]["runs"][key[1]], delta),
                     "baseline": baseline[key]["dice"], "held_out": held})
        print(f"{key[0]:13} {key[1]:22} delta {delta}: box-only {baseline[key]['dice'][0]:.3f} -> {held[0]:.3f}, "
              f"{AT} clicks {baseline[key]['dice'][AT]:.3f} -> {held[AT]:.3f}")
    by_group = {}
    for row in rows:
        g = by_group.setdefault(row["group"], {"runs": 0, "box_only": [0.0, 0.0], "at_3": [0.0, 0.0], "losing": 0})
        g["runs"] += 1
        for n, key in enumerate(("baseline", "held_out")):
            g["box_only"][n] += row[key][0]
            g["at_3"][n] += row[key][AT]
        g["losing"] += row["baseline"][AT] - row["held_out"][AT] > MAX_LOSS
    for name, g in by_group.items():
        g["box_only"] = [round(v / g["runs"], 4) for v in g["box_only"]]
        g["at_3"] = [round(v / g["runs"], 4) for v in g["at_3"]]
        print(f"{name:10} delta {folds.get(name, folds['all'])}: mean box-only {g['box_only'][0]:.3f} -> "
              f"{g['box_only'][1]:.3f}, {AT} clicks {g['at_3'][0]:.3f} -> {g['at_3'][1]:.3f}, "
              f"runs losing > {MAX_LOSS}: {g['losing']} of {g['runs']}")
    return {"deltas": DELTAS, "folds": folds, "groups": by_group, "runs": rows}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("step", choices=("collect", "choose"))
    parser.add_argument("--phantom", type=Path, help="collect: manifest of benchmarks/lung_phantom.py")
    parser.add_argument("--clicks", type=Path, help="choose: option_loco.py's report of tighten_steps 2 0")
    args = parsed_with_cache(parser)
    if args.step == "collect":
        BOXES.write_text(json.dumps(collect(args.phantom), indent=1))
        return
    boxes = json.loads(BOXES.read_text())
    clicks = {(r["case"], r["box"]): {"group": boxes[r["case"]]["group"], "by_value": r["by_value"]}
              for r in json.loads(args.clicks.read_text())["runs"]}
    (RESULTS / "tighten_choice_loco.json").write_text(json.dumps(report(boxes, clicks), indent=1))


if __name__ == "__main__":
    main()
