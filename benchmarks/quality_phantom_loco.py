"""The quality term and low-quality threshold re-chosen leave-one-patient-out over eight patients: the four
lesions (loco_tune.py's click runs, results/loco_tune_interactive.json) and the four lung tumours of
benchmarks/lung_phantom.py as groups.

    PYTHONPATH=.:benchmarks python benchmarks/quality_phantom_loco.py collect --phantom MANIFEST [--clicks 10] \
        [--cases pat1 ...]
    PYTHONPATH=.:benchmarks python benchmarks/quality_phantom_loco.py choose
``collect`` runs the protocol (every box, ``--clicks`` clicks, each step's quality terms) on the phantom's
patients with the engine as shipped into results/quality_phantom_runs.json; ``choose`` picks term and
threshold as loco_tune.py does, each group scored with the choice made on the other seven, and writes
results/quality_phantom_loco.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from loco_cases import CASES, parsed_with_cache, phantom_cases
from loco_tune import click_runs, quality_folds, quality_report
from rtsam.cli.common import to_jsonable
from rtsam.engines.registry import load_engine

RESULTS = Path(__file__).resolve().parent / "results"
RUNS = RESULTS / "quality_phantom_runs.json"


def collect(manifest: Path, clicks: int, only: list[str] | None) -> None:
    """The protocol on the phantom's patients (``only``: these, keeping the others' saved runs)."""
    runs = json.loads(RUNS.read_text()) if only and RUNS.exists() else []
    for name, case in phantom_cases(manifest).items():
        if only and name not in only:
            continue
        runs = [r for r in runs if r["name"] != name] + [click_runs({"name": name, **case}, load_engine("litemedsam"),
                                                                    clicks)]
        RUNS.write_text(json.dumps(to_jsonable(sorted(runs, key=lambda r: r["name"]))))


def choose() -> None:
    cases = json.loads((RESULTS / "loco_tune_interactive.json").read_text()) + json.loads(RUNS.read_text())
    groups = (*CASES, *sorted({c["group"] for c in cases} - set(CASES)))
    folds = quality_folds(cases, groups)
    report = {"groups": groups, "folds": {g: {"term": t, "threshold": th} for g, (t, th) in folds.items()},
              "quality": quality_report(cases, folds, groups)}
    (RESULTS / "quality_phantom_loco.json").write_text(json.dumps(to_jsonable(report), indent=1))
    print(json.dumps(report["folds"], indent=1))
    print(json.dumps({k: v for k, v in report["quality"].items() if not k.startswith("per_term")}, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=("collect", "choose"))
    parser.add_argument("--phantom", type=Path, help="collect: the lung phantom's manifest")
    parser.add_argument("--clicks", type=int, default=10)
    parser.add_argument("--cases", nargs="*", help="collect: only these patients (pat1, ...)")
    args = parsed_with_cache(parser)
    if args.command == "collect":
        if args.phantom is None:
            parser.error("collect needs --phantom MANIFEST")
        collect(args.phantom, args.clicks, args.cases)
    else:
        choose()


if __name__ == "__main__":
    main()
