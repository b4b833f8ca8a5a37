"""Box-only LiteMedSAM results on every tuning case, box and CT window, slice by slice, with the
presence rule off: what leave-one-case-out tuning (loco_tune.py) replays rules on.

    PYTHONPATH=.:benchmarks python benchmarks/loco_collect.py [--cache /tmp/rtsam_embeddings] [--checks] \
        [--phantom MANIFEST]
writes benchmarks/results/loco_slices.json; ``--checks`` records the cases kept OUT of tuning
(loco_cases.check_cases: the reference phase of ``rtsam demo``'s 4DCT) into loco_checks.json;
``--phantom`` records benchmarks/lung_phantom.py's four lung tumours (four more groups) into
loco_slices_phantom.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from loco_cases import all_cases, check_cases, parsed_with_cache, phantom_cases
from rtsam.benchmark_interactive import box_variants
from rtsam.engines.base import Prompt
from rtsam.engines.registry import load_engine

RESULTS = Path(__file__).resolve().parent / "results"


def slice_rows(result, truth: np.ndarray) -> list[dict]:
    """One row per decoded slice: its evidence, propagation source, predicted/true/overlap areas."""
    rows = []
    for k, (_, _, _, _, evidence) in sorted(result.state["slices"].items()):
        pred = result.mask.array[k] > 0
        rows.append({"k": int(k), **evidence, "truth": int(truth[k].sum()), "inter": int((pred & truth[k]).sum())})
    return rows


def collect(case: dict, record: dict) -> None:
    """Box-only runs of one case (both CT windows, or the MR one) for every box into ``record``."""
    image, label = case["image"], case["label"]
    truth = label.array > 0
    is_ct = float(image.array.min()) < -500
    record.update(group=case["group"], truth_total=int(truth.sum()), slice_mm=float(image.spacing[2]))
    record.setdefault("runs", [])
    boxes = {**box_variants(label), **case.get("boxes", {})}
    for window in ("lung", "soft-tissue") if is_ct else ("auto",):
        engine = load_engine("litemedsam", ct_window=window, presence=None)
        context = engine.open(image)
        for box_name, box in boxes.items():
            start = time.time()
            result = context.predict(Prompt(box_lps=box))
            k = image.lps_to_ijk(box)[:, 2]
            record["runs"] = [r for r in record["runs"] if (r["box"], r["window"]) != (box_name, window)]
            record["runs"].append({"box": box_name, "window": window, "k_box": [float(k.min()), float(k.max())],
                                   "slices": slice_rows(result, truth)})
            print(case["group"], window, box_name, round(time.time() - start, 1), "s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", nargs="*")
    parser.add_argument("--checks", action="store_true", help="record the out-of-tuning cases instead")
    parser.add_argument("--phantom", type=Path, help="record the lung phantom's patients (its manifest) instead")
    args = parsed_with_cache(parser)
    if args.phantom:
        out_path, cases = RESULTS / "loco_slices_phantom.json", phantom_cases(args.phantom)
    elif args.checks:
        out_path, cases = RESULTS / "loco_checks.json", check_cases()
    else:
        out_path, cases = RESULTS / "loco_slices.json", all_cases()
    out = json.loads(out_path.read_text()) if out_path.exists() else {}
    for name, case in cases.items():
        if args.cases and name not in args.cases:
            continue
        collect(case, out.setdefault(name, {}))
        out_path.write_text(json.dumps(out))


if __name__ == "__main__":
    main()
