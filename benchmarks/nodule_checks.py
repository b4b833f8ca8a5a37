"""The presence rules on small lung nodules none of them was tuned on: ``rtsam benchmark nodules``'
cases (6 nodules of lung2's tumour tissue in lung2's aerated lung, seed 1), box-only, replayed
offline like loco_tune.py: no rule, the engine's opt-in PRESENCE_RULE, each leave-one-lesion-out
fold rule of loco_tune.json ("plain" and "with_checks", their "all" rules included), per nodule and
in total; plus the presence features' AUC on the nodules.

    PYTHONPATH=.:benchmarks python benchmarks/nodule_checks.py [--cache /tmp/rtsam_embeddings]
writes benchmarks/results/loco_nodules.json (slice records) and nodule_checks.json.
The nodules share lung2's image: they check the rules, they do not stand for another patient.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from loco_cases import nodule_check_cases, parsed_with_cache
from loco_collect import collect
from loco_rules import feature_auc, score
from presence_clicks_loco import rule_of
from rtsam.engines.litemedsam import PRESENCE_RULE

RESULTS = Path(__file__).resolve().parent / "results"


def fold_rules() -> dict:
    """{"plain lung2": PresenceRule, ...} from loco_tune.json's presence folds (None: no rule)."""
    folds = json.loads((RESULTS / "loco_tune.json").read_text())["presence_folds"]
    rules = {}
    for kind, by_group in folds.items():
        for group, fold in by_group.items():
            rules[f"{kind} {group}"] = rule_of(fold["fields"])
    return rules


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=6)
    parser.add_argument("--seed", type=int, default=1)
    parsed = parsed_with_cache(parser)
    records = {}
    for name, case in nodule_check_cases(parsed.count, parsed.seed).items():
        collect(case, records.setdefault(name, {}))
    (RESULTS / "loco_nodules.json").write_text(json.dumps(records))
    rules = {"off": None, "PRESENCE_RULE": PRESENCE_RULE, **fold_rules()}
    report = {"feature_auc": feature_auc(records), "rules": {k: None if r is None else str(r) for k, r in rules.items()},
              "total": {k: score(records, list(records), r) for k, r in rules.items()},
              "per_nodule": {n: {k: score(records, [n], r) for k, r in rules.items()} for n in records}}
    (RESULTS / "nodule_checks.json").write_text(json.dumps(report, indent=1))
    for key, total in report["total"].items():
        per = " ".join(f"{report['per_nodule'][n][key]['dice']:.3f}" for n in records)
        print(f"{key:20s} box-only {total['dice']:.3f} ({per})  margin empty {total['empty_rate']:.2f}  "
              f"lesion slices lost {total['lesion_lost']}")


if __name__ == "__main__":
    main()
