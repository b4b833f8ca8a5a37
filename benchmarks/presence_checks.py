"""The out-of-tuning checks of a LiteMedSAM presence rule, run through the engine itself:
(1) ``rtsam demo`` part (c), the 4-phase 4DCT of a lung2 crop: phase and ITV Dice;
(2) every tuning case with a box exactly on its label (0 mm): box-only Dice and the lesion slices
    (slices whose mask without the rule overlaps the lesion) the rule leaves empty;
(3) the four lesions at the protocol's 5 mm box: Dice after the box and 3 simulated clicks (the
    rule is tuned on them: this checks the engine against the replay, not generalisation).

    PYTHONPATH=.:benchmarks python benchmarks/presence_checks.py [--cache /tmp/rtsam_embeddings]
writes benchmarks/results/presence_checks.json (without a rule and with the engine's opt-in PRESENCE_RULE).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path


from loco_cases import CASES, all_cases, load, parsed_with_cache
from rtsam.benchmark_interactive import box_from_label, run_interactive
from rtsam.demo import parts
from rtsam.engines.base import Prompt
from rtsam.engines.litemedsam import PRESENCE_RULE
from rtsam.engines.registry import load_engine
from rtsam.metrics import dice

RESULTS = Path(__file__).resolve().parent / "results"


def demo_itv(engine) -> dict:
    with tempfile.TemporaryDirectory() as out:
        summary = parts.lung_itv(Path(out), engine, lambda fraction, note="": None)
    return {"per_phase": [row["dice"] for row in summary["per_phase"]], "itv_dice": summary["itv_dice"]}


def tight_boxes(engines: dict) -> dict:
    """{case: {engine name: {"dice", "slices"}, "lesion_slices_lost"}} with 0 mm boxes."""
    out = {}
    for name, case in all_cases().items():
        image, label = case["image"], case["label"]
        box = box_from_label(label, 0.0)
        row = {}
        for key, engine in engines.items():
            mask = engine.open(image).predict(Prompt(box_lps=box)).mask.array > 0
            row[key] = {"dice": round(dice(label.with_array(mask.astype("uint8")), label), 4),
                        "slices": [int(k) for k in mask.any(axis=(1, 2)).nonzero()[0]], "mask": mask}
        truth = label.array > 0
        off, rule = row["off"]["mask"], row["rule"]["mask"]
        row["lesion_slices_lost"] = [int(k) for k in range(len(truth)) if (off[k] & truth[k]).any() and not rule[k].any()]
        for key in engines:
            row[key].pop("mask")
        out[name] = row
        print(name, row, flush=True)
    return out


def three_clicks(engines: dict) -> dict:
    """{case: {engine name: Dice per step}} at the 5 mm box, 3 clicks."""
    out = {}
    for name in CASES:
        image, label = load(name)
        out[name] = {key: [s["dice"] for s in run_interactive(image, label, engine, clicks=3)["steps"]]
                     for key, engine in engines.items()}
        print(name, out[name], flush=True)
    return out


def main() -> None:
    """Both checks without a rule and with PRESENCE_RULE."""
    parser = argparse.ArgumentParser()
    parsed_with_cache(parser)
    engines = {"off": load_engine("litemedsam"), "rule": load_engine("litemedsam", presence=PRESENCE_RULE)}
    report = {"rule": str(PRESENCE_RULE), "demo_itv": {}}
    for key, engine in engines.items():
        report["demo_itv"][key] = demo_itv(engine)
        print(key, report["demo_itv"][key], flush=True)
    report["tight_boxes"] = tight_boxes(engines)
    report["three_clicks_5mm"] = three_clicks(engines)
    (RESULTS / "presence_checks.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
