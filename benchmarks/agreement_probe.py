"""Does the zoomed view agree with the whole-slice view on lesion slices and disagree on margin slices?

For every tuning case and box (box only, presence off, the CT window the engine picks), the whole-slice
result and the result seen in a zoomed region (``ZoomRule`` always on, ``--factor``) are compared slice by
slice: the IoU of the two masks ("agreement"). Lesion slices (truth there) and margin slices (none) in the
outer half of the box are told apart by agreement with the AUC printed per group, beside the AUC of the
presence evidence's embedding gap from the same runs.

    PYTHONPATH=.:benchmarks python benchmarks/agreement_probe.py [--factor 3] [--groups G...] [--out F]
writes benchmarks/results/agreement_probe.json (or --out).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from loco_cases import all_cases, check_cases, nodule_check_cases, parsed_with_cache
from rtsam.benchmark_interactive import box_variants
from rtsam.engines.base import Prompt
from rtsam.engines.litemedsam_prep import ZoomRule
from rtsam.engines.registry import load_engine

RESULTS = Path(__file__).resolve().parent / "results" / "agreement_probe.json"


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.count_nonzero(a | b)
    return 1.0 if union == 0 else np.count_nonzero(a & b) / union


def probe(case: dict, factor: float) -> list[dict]:
    """One row per decoded slice of every box: truth area, whether it is in the box's outer half,
    agreement with the zoomed view, and the slice's embedding gap."""
    image, truth = case["image"], case["label"].array > 0
    rows = []
    for box_name, box in {**box_variants(case["label"]), **case.get("boxes", {})}.items():
        plain = load_engine("litemedsam", presence=None).open(image).predict(Prompt(box_lps=box))
        window = (plain.state.get("window") or {}).get("name", "auto")
        zoomed = load_engine("litemedsam", presence=None, ct_window=window,
                             zoom=ZoomRule(float("inf"), factor)).open(image).predict(Prompt(box_lps=box))
        ks = sorted(plain.state["slices"])
        k0, k1 = ks[0], ks[-1]
        middle, half = (k0 + k1) / 2, (k1 - k0) / 2
        for k in ks:
            a, b = plain.mask.array[k] > 0, zoomed.mask.array[k] > 0
            evidence = plain.state["slices"][k][4]
            rows.append({"box": box_name, "k": int(k), "truth": int(truth[k].sum()), "area": int(a.sum()),
                         "zoom_area": int(b.sum()), "agreement": round(iou(a, b), 4),
                         "outer": bool(half > 0 and abs(k - middle) >= half / 2),
                         "embedding_gap": evidence.get("embedding_gap")})
        print(case["group"], box_name, window, [(r["truth"] > 0, r["agreement"]) for r in rows[-len(ks):]],
              flush=True)
    return rows


def auc(scores: list[float], positive: list[bool]) -> float | None:
    """P(a lesion slice scores higher than a margin slice), ties half."""
    pos = [s for s, p in zip(scores, positive) if p]
    neg = [s for s, p in zip(scores, positive) if not p]
    if not pos or not neg:
        return None
    return float(np.mean([(p > n) + 0.5 * (p == n) for p in pos for n in neg]))


def summary(report: dict) -> dict:
    groups = {}
    for entry in report.values():
        groups.setdefault(entry["group"], []).extend(r for r in entry["rows"] if r["outer"] and r["area"] > 0)
    groups["all four"] = [r for g in ("lung2", "brain1", "brain2", "breast1") for r in groups.get(g, [])]
    out = {}
    for group, rows in groups.items():
        lesion = [r["truth"] > 0 for r in rows]
        out[group] = {"lesion": sum(lesion), "margin": len(rows) - sum(lesion),
                      "auc_agreement": auc([r["agreement"] for r in rows], lesion),
                      "auc_embedding_gap": auc([r["embedding_gap"] for r in rows if r["embedding_gap"] is not None],
                                               [p for p, r in zip(lesion, rows) if r["embedding_gap"] is not None])}
        print(group, out[group])
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--factor", type=float, default=3.0)
    parser.add_argument("--groups", nargs="*")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parsed_with_cache(parser)
    report = json.loads(args.out.read_text()).get("cases", {}) if args.out.exists() else {}
    for name, case in {**all_cases(), **check_cases(), **nodule_check_cases()}.items():
        if (args.groups and case["group"] not in args.groups) or name in report:
            continue
        report[name] = {"group": case["group"], "rows": probe(case, args.factor)}
        args.out.write_text(json.dumps({"factor": args.factor, "cases": report}, indent=1))
    args.out.write_text(json.dumps({"factor": args.factor, "cases": report, "summary": summary(report)}, indent=1))


if __name__ == "__main__":
    main()
