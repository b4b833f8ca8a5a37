"""The presence rule re-chosen leave-one-patient-out over eight patients: the four lesions of
../shared/data/pyradiomics and the four lung tumours of benchmarks/lung_phantom.py as groups.

    PYTHONPATH=.:benchmarks python benchmarks/loco_collect.py --phantom MANIFEST   # their slice records
    PYTHONPATH=.:benchmarks python benchmarks/presence_phantom_loco.py

Same candidates and criterion as loco_tune.py (the rule leaving most margin slices empty among those
costing no in-sample group more than 0.02 box-only Dice); each group is scored with the rule chosen on the
other seven. Also: each presence feature's AUC (lesion against margin slices) per group, and the engine's
opt-in rule (litemedsam.PRESENCE_RULE, chosen on the four lesions) replayed on the phantom's records.
Writes benchmarks/results/presence_phantom_loco.json.
"""

from __future__ import annotations

import json
from pathlib import Path

from loco_cases import CASES
from loco_rules import feature_auc, score
from loco_tune import presence_folds, presence_report
from rtsam.cli.common import to_jsonable
from rtsam.engines.litemedsam import PRESENCE_RULE

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    records = json.loads((RESULTS / "loco_slices.json").read_text())
    phantom = json.loads((RESULTS / "loco_slices_phantom.json").read_text())
    checks = json.loads((RESULTS / "loco_checks.json").read_text())
    records.update(phantom)
    groups = (*CASES, *sorted({c["group"] for c in phantom.values()}))
    folds = presence_folds(records, checks, groups)
    by_group = {g: {n: c for n, c in records.items() if c["group"] == g} for g in groups}
    report = {"groups": groups,
              "feature_auc": {g: feature_auc(cases) for g, cases in by_group.items()},
              "shipped_rule_on_phantom": {c: {"off": score(phantom, [c], None),
                                              "on": score(phantom, [c], PRESENCE_RULE)} for c in sorted(phantom)},
              "presence_folds": {name: presence_report(records, checks, f) for name, f in folds.items()}}
    (RESULTS / "presence_phantom_loco.json").write_text(json.dumps(to_jsonable(report), indent=1))
    for name, fold in report["presence_folds"].items():
        print(name)
        for group, r in fold.items():
            if r["held_out"]:
                off, on = r["held_out_off"], r["held_out"]
                print(f"  {group:8} box-only {off['dice']:.3f} -> {on['dice']:.3f}, margin empty "
                      f"{on['empty_rate']:.2f}, lesion slices lost {on['lesion_lost']}: {r['rule']}")
            else:
                print(f"  {group:8} {r['rule']}")


if __name__ == "__main__":
    main()
