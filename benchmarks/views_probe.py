"""Records, per tuning case and box, what the reformat presence cue (views_reformat.py) would see:
box-only LiteMedSAM with presence off (per slice of the box: truth, predicted and overlap areas),
then the coronal/sagittal reformat masks' widths per axial slice for every variant (3 planes per
axis, the user's or the seed mask's box across the plane, tightened or not, core fractions), so that
views_loco.py can choose the rule by leave-one-case-out without rerunning the model. Clearing the
slices beyond where the cue ends the object is exact on these records (nothing propagates from them).

    PYTHONPATH=.:benchmarks python benchmarks/views_probe.py [--cases lung2 ...] [--checks]
writes benchmarks/results/views_probe.json (views_probe_checks.json with --checks).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


from loco_cases import all_cases, check_cases, parsed_with_cache
from rtsam.benchmark_interactive import box_variants
from rtsam.engines.base import Prompt
from rtsam.engines.litemedsam import BOX_PAD_PX, SlicePlan
from rtsam.engines.litemedsam_prep import clip_box, mask_box
from rtsam.engines.registry import load_engine
from views_reformat import plane_indices, reformat, slice_widths, view_box, view_mask

RESULTS = Path(__file__).resolve().parent / "results"
CORES = (0.25, 0.5, 1.0)


def probe(context, image, truth, box) -> dict:
    """One box: per slice of the box the truth/predicted/overlap areas, and the views' widths."""
    result = context.predict(Prompt(box_lps=box))
    plan = SlicePlan.build(image, Prompt(box_lps=box))
    pred = result.mask.array > 0
    ks = list(range(plan.k_range[0], plan.k_range[1] + 1))
    row = {"ks": ks, "middle": plan.middle, "window": context.window_name,
           "truth": [int(truth[k].sum()) for k in ks], "pred": [int(pred[k].sum()) for k in ks],
           "inter": [int((pred[k] & truth[k]).sum()) for k in ks],
           "truth_total": int(truth.sum()), "pred_total": int(pred.sum()), "inter_total": int((pred & truth).sum())}
    seed = pred[plan.middle]
    if not seed.any():
        return {**row, "views": {}}
    centre = {axis: idx[0] for axis, idx in plane_indices(seed, 1).items()}
    views = {}
    for axis, indices in plane_indices(seed, 3).items():
        for index in indices:
            view = reformat(image, axis, index)
            for across in ("user", "seed"):
                box2d = view_box(view, plan.box if across == "user" else clip_box(mask_box(seed, BOX_PAD_PX), plan.box),
                                 plan.k_range)
                for tighten in (False, True):
                    mask = view_mask(context, view, box2d, tighten)
                    for core in CORES:
                        role = "centre" if index == centre[axis] else "side"
                        views[f"{axis}|{role}|{index}|{tighten}|{core}|{across}"] = \
                            [round(w, 2) for w in slice_widths(view, mask, ks, core)]
    return {**row, "views": views}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", nargs="*")
    parser.add_argument("--boxes", nargs="*", help="box names (default: all of box_variants and the case's own)")
    parser.add_argument("--checks", action="store_true")
    parser.add_argument("--out", default="views_probe", help="results file name (without .json)")
    args = parsed_with_cache(parser)
    out_path = RESULTS / f"{args.out}{'_checks' if args.checks else ''}.json"
    out = json.loads(out_path.read_text()) if out_path.exists() else {}
    engine = load_engine("litemedsam")
    for name, case in (check_cases() if args.checks else all_cases()).items():
        if args.cases and name not in args.cases:
            continue
        image, truth = case["image"], case["label"].array > 0
        context = engine.open(image)
        record = out.setdefault(name, {"group": case["group"], "boxes": {}})
        for box_name, box in {**box_variants(case["label"]), **case.get("boxes", {})}.items():
            if (args.boxes and box_name not in args.boxes) or (box_name in record["boxes"] and not args.boxes):
                continue  # without --boxes, boxes already recorded are kept
            record["boxes"][box_name] = probe(context, image, truth, box)
            print(name, box_name, record["boxes"][box_name]["middle"], flush=True)
            out_path.write_text(json.dumps(out))


if __name__ == "__main__":
    main()
