"""Two more object-presence cues, tried over the eight patients (the four lesions and benchmarks/lung_phantom.py's
four lung tumours); neither made a rule that meets issue 17's bounds, so neither is in the engine.

``extent``: a shape guard. A lesion reaches about as far in z as across, so a slice may only fail when it lies
more than f times the seed mask's equivalent radius (sqrt(area / pi), in mm) from the seed slice. Every
candidate of loco_rules.candidate_rules, and those without a guard once more with each f, replayed on
loco_collect.py's slice records and chosen leave-one-patient-out as presence_phantom_loco.py does.

``growth``: prompt consistency. Each box-only slice is decoded again with its box grown f times about its
centre; a mask that fills whatever box it gets should grow, an object's should not. Per patient, the AUC of
that growth (and of the share of the mask the grown decode keeps) telling margin slices (no lesion) from
lesion slices (mask mostly on the lesion), over every box of benchmark_interactive.box_variants.

    PYTHONPATH=.:benchmarks python benchmarks/presence_probes.py extent --phantom MANIFEST
    PYTHONPATH=.:benchmarks python benchmarks/presence_probes.py growth --phantom MANIFEST

``footprint``: does the tissue persist. Per propagated box-only slice, the image values under the mask of the
slice it was propagated from, against those values on that slice: their mean's shift over the seed mask's
contrast (mean inside - mean in its ring), and how many of them the seed slice's histograms call lesion-like
(``litemedsam_evidence.SeedModel``), alone and over the same on the source slice. Per patient, the AUC of each
telling lesion slices (mask mostly on the lesion) from margin slices.

    PYTHONPATH=.:benchmarks python benchmarks/presence_probes.py footprint --phantom MANIFEST

Each writes its part of benchmarks/results/presence_probes.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from pathlib import Path

import numpy as np

from loco_cases import CASES, all_cases, check_cases, parsed_with_cache, phantom_cases
from loco_rules import candidate_rules, choose_presence, group_scores, score
from rtsam.benchmark_interactive import box_variants
from rtsam.cli.common import to_jsonable
from rtsam.engines.base import Prompt
from rtsam.engines.litemedsam import SlicePlan
from rtsam.engines.litemedsam_evidence import SeedModel, inside_and_ring
from rtsam.engines.litemedsam_presence import PresenceRule
from rtsam.engines.registry import load_engine

RESULTS = Path(__file__).resolve().parent / "results"
EXTENTS = (1.0, 1.5, 2.0)  # seed radii
GROWTHS = (1.5, 2.0)  # box side factors


@dataclasses.dataclass(frozen=True)
class ExtentRule(PresenceRule):
    """A presence rule whose slices fail only beyond ``extent`` seed radii from the seed."""

    extent: float = 0.0

    def fails(self, evidence: dict, seed: dict, neighbour: dict, distance_mm: float, depth: float) -> bool:
        if distance_mm <= self.extent * seed["radius_mm"]:
            return False
        return super().fails(evidence, seed, neighbour, distance_mm, depth)

    def __str__(self) -> str:
        return f"{super().__str__()}, beyond {self.extent:g} seed radii"


def with_radius(records: dict, pixel_mm2: dict) -> dict:
    """``records`` with each slice's equivalent mask radius in mm (``pixel_mm2``: per case)."""
    for name, case in records.items():
        for run in case["runs"]:
            for row in run["slices"]:
                row["radius_mm"] = math.sqrt(row["area"] * pixel_mm2[name] / math.pi)
    return records


def extent(phantom: Path) -> dict:
    cases = {**all_cases(), **phantom_cases(phantom), **check_cases()}
    pixel_mm2 = {name: float(np.prod(case["image"].spacing[:2])) for name, case in cases.items()}
    records = json.loads((RESULTS / "loco_slices.json").read_text())
    records.update(json.loads((RESULTS / "loco_slices_phantom.json").read_text()))
    checks = json.loads((RESULTS / "loco_checks.json").read_text())
    with_radius(records, pixel_mm2)
    with_radius(checks, pixel_mm2)
    groups = (*CASES, *sorted({c["group"] for c in records.values()} - set(CASES)))
    plain = candidate_rules()
    rules = plain + [ExtentRule(r.conditions, r.run, 0.0, r.edge_fails, r.join, 0.0, f)
                     for r in plain if r.guard_mm == 0 and r.inner == 0 for f in EXTENTS]
    both = {**records, **checks}
    scored = [(rule, group_scores(both, list(both), rule)) for rule in rules]
    baseline = group_scores(both, list(both), None)
    folds = {}
    for group in (*groups, "all"):
        rule = choose_presence(scored, [g for g in groups if g != group], baseline)
        held = [c for c in records if records[c]["group"] == group]
        folds[group] = {"rule": None if rule is None else str(rule), "extent_guard": isinstance(rule, ExtentRule),
                        "held_out_off": score(records, held, None) if held else None,
                        "held_out": score(records, held, rule) if held else None,
                        "checks": {c: {"off": score(checks, [c], None), "on": score(checks, [c], rule)} for c in checks}}
        line = f"{group:8} {folds[group]['rule']}"
        if held:
            off, on = folds[group]["held_out_off"], folds[group]["held_out"]
            line += (f"\n         held out box-only {off['dice']:.3f} -> {on['dice']:.3f}, margin empty "
                     f"{on['empty_rate']:.2f}, lesion slices lost {on['lesion_lost']}")
        print(line, flush=True)
    return {"extents": EXTENTS, "candidates": len(rules), "folds": folds}


def growth_rows(engine, name: str, case: dict) -> list[dict]:
    """Per box and box-only slice with a mask: its kind (margin / lesion / other) and growth under each GROWTHS."""
    truth = case["label"].array > 0
    context = engine.open(case["image"])
    limit = np.array([truth.shape[2], truth.shape[1]] * 2, dtype=float) - 1
    rows = []
    for box_name, box in box_variants(case["label"]).items():
        result = context.predict(Prompt(box_lps=box))
        for k, (logits, slice_box, *_, evidence) in result.state["slices"].items():
            mask = result.mask.array[k] > 0
            area = np.count_nonzero(mask)
            if logits is None or not area:
                continue
            centre, half = (slice_box[:2] + slice_box[2:]) / 2, (slice_box[2:] - slice_box[:2]) / 2
            row = {"case": name, "group": case["group"], "box": box_name, "k": int(k), "area": int(area),
                   "kind": "margin" if not truth[k].any() else
                   "lesion" if np.count_nonzero(truth[k] & mask) > area / 2 else "other"}
            for f in GROWTHS:
                grown = np.clip(np.concatenate([centre - half * f, centre + half * f]), 0, limit)
                grown_logits, _ = context.decode(context.embedding(k, {}), grown, [], None)
                grown_mask = context.letterbox.probability(grown_logits) > 0.5
                row[f"growth_{f:g}"] = np.count_nonzero(grown_mask) / area
                row[f"kept_{f:g}"] = np.count_nonzero(grown_mask & mask) / area
            rows.append(row)
        print(name, box_name, flush=True)
    return rows


def per_patient_auc(phantom: Path, rows_of, cues, high: str) -> tuple[list[dict], dict]:
    """``rows_of(engine, name, case)``'s slice rows over the eight patients' cases, and per patient the AUC of
    each of ``cues`` ranking ``high`` slices ("margin" or "lesion") above the other kind."""
    engine = load_engine("litemedsam", device="cpu")
    cases = {**all_cases(), **phantom_cases(phantom)}
    rows = [row for name, case in cases.items() for row in rows_of(engine, name, case)]
    low = "lesion" if high == "margin" else "margin"
    auc = {}
    for group in dict.fromkeys(c["group"] for c in cases.values()):
        mine = {kind: [r for r in rows if r["group"] == group and r["kind"] == kind] for kind in ("margin", "lesion")}
        auc[group] = {"margin_slices": len(mine["margin"]), "lesion_slices": len(mine["lesion"]),
                      **{cue: round(float(np.mean([(a[cue] > b[cue]) + 0.5 * (a[cue] == b[cue])
                                                   for a in mine[high] for b in mine[low]])), 3) for cue in cues}}
        print(group, auc[group], flush=True)
    return rows, auc


def growth(phantom: Path) -> dict:
    cues = [f"{cue}_{f:g}" for f in GROWTHS for cue in ("growth", "kept")]
    rows, auc = per_patient_auc(phantom, growth_rows, cues, "margin")
    return {"growths": GROWTHS, "auc_margin_above_lesion": auc, "slices": rows}


def footprint_cues(image, masks: np.ndarray, k: int, source: int, seed: int, model: SeedModel) -> dict:
    """The footprint cues of slice ``k`` propagated from ``source`` (``masks``: the result's; higher: more present)."""
    under = masks[source]
    now, before = image.array[k][under].astype(float), image.array[source][under].astype(float)
    inside, ring = inside_and_ring(image.array[seed], masks[seed], image.spacing[:2])
    step = abs(inside.mean() - ring.mean())
    before_like = model.likeness(before)
    return {"footprint_kept": 1.0 - min(abs(now.mean() - before.mean()) / max(step, 1e-6), 1.0),
            "footprint_likeness": model.likeness(now),
            "footprint_persistence": min(model.likeness(now) / max(before_like, 1e-6), 1.0)}


def footprint_rows(engine, name: str, case: dict) -> list[dict]:
    """Per box and propagated box-only slice whose source has a mask: its kind and footprint cues."""
    image, truth = case["image"], case["label"].array > 0
    context = engine.open(image)
    rows = []
    for box_name, box in box_variants(case["label"]).items():
        prompt = Prompt(box_lps=box)
        masks = context.predict(prompt).mask.array > 0
        order = SlicePlan.build(image, prompt).order()
        seed = order[0][0]
        model = SeedModel.of(image.array[seed], masks[seed], image.spacing[:2])
        for k, source in order[1:]:
            area = np.count_nonzero(masks[k])
            if model is None or not area or np.count_nonzero(masks[source]) < 4:
                continue
            rows.append({"case": name, "group": case["group"], "box": box_name, "k": int(k), "area": int(area),
                         "kind": "margin" if not truth[k].any() else
                         "lesion" if np.count_nonzero(truth[k] & masks[k]) > area / 2 else "other",
                         **footprint_cues(image, masks, k, source, seed, model)})
        print(name, box_name, flush=True)
    return rows


def footprint(phantom: Path) -> dict:
    cues = ("footprint_kept", "footprint_likeness", "footprint_persistence")
    rows, auc = per_patient_auc(phantom, footprint_rows, cues, "lesion")
    return {"auc_lesion_above_margin": auc, "slices": rows}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("probe", choices=("extent", "growth", "footprint"))
    parser.add_argument("--phantom", type=Path, required=True, help="manifest of benchmarks/lung_phantom.py")
    args = parsed_with_cache(parser)
    out = RESULTS / "presence_probes.json"
    report = json.loads(out.read_text()) if out.exists() else {}
    report[args.probe] = {"extent": extent, "growth": growth, "footprint": footprint}[args.probe](args.phantom)
    out.write_text(json.dumps(to_jsonable(report), indent=1))


if __name__ == "__main__":
    main()
