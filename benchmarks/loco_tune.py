"""Leave-one-case-out choice of LiteMedSAM's presence rule, quality term and low-quality threshold.

    PYTHONPATH=.:benchmarks python benchmarks/loco_collect.py        # box-only slice records
    PYTHONPATH=.:benchmarks python benchmarks/loco_tune.py [--clicks 10] [--cases ...]

The groups are the four lesions of ../shared/data/pyradiomics; each group's sub-cases (see
loco_cases.py) are scored with rules chosen on the other three groups only:
1. presence rule (litemedsam_presence.PresenceRule, ~53,000 candidates): replayed on the box-only
   records, the one leaving most margin slices empty among those costing no group more than 0.02
   box-only Dice (loco_rules.choose_presence); each fold's rule is also replayed on the cases kept
   out of tuning (loco_checks.json, ``loco_collect.py --checks``); the "with_checks" folds hold
   those cases to the same bound too (the engine's opt-in PRESENCE_RULE was their "all" rule under
   the earlier CT window rule);
2. the full protocol (every box, ``--clicks`` clicks) runs with the engine as shipped (presence
   off: no rule passed the checks);
3. quality term: the one whose lowest within-group Spearman rho against Dice over the other groups
   is highest (chosen by pooled rho until session 17: that choice changed between folds);
   low-quality threshold: the best balanced accuracy at flagging Dice < FAILURE_DICE there.
Writes benchmarks/results/loco_tune.json, the click runs to loco_tune_interactive<--part>.json and
a plot of them to loco_tune_interactive.png (``--skip-clicks``: from all saved click runs).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from loco_cases import CASES, all_cases, parsed_with_cache
from loco_rules import candidate_rules, choose_presence, feature_auc, group_scores, replay, score, window_runs
from rtsam.benchmark_cases import case_summary, plot_cases
from rtsam.benchmark_interactive import box_variants, run_interactive
from rtsam.cli.common import to_jsonable
from rtsam.engines.litemedsam_evidence import QUALITY_TERMS
from rtsam.engines.registry import load_engine

RESULTS = Path(__file__).resolve().parent / "results"
FAILURE_DICE = 0.7
QUALITY_THRESHOLDS = [round(t, 2) for t in np.arange(0.2, 0.91, 0.02)]


def presence_folds(records: dict, checks: dict, groups=CASES) -> dict:
    """{"plain" / "with_checks": {held-out group: rule chosen without it (None: none)}, plus "all":
    chosen on every group}; "with_checks" also holds every check case to the 0.02 Dice bound."""
    cases = {**records, **checks}
    scored = [(rule, group_scores(cases, list(cases), rule)) for rule in candidate_rules()]
    baseline = group_scores(cases, list(cases), None)
    constraints = {"plain": (), "with_checks": tuple({c["group"] for c in checks.values()})}
    return {name: {g: choose_presence(scored, [h for h in groups if h != g] if g != "all" else groups, baseline,
                                      constraints=held) for g in (*groups, "all")}
            for name, held in constraints.items()}


def presence_report(records: dict, checks: dict, folds: dict) -> dict:
    """Per fold: the rule, its held-out box-only score (against no rule) and its score on the checks."""
    report = {}
    for group, rule in folds.items():
        held = [c for c in records if records[c]["group"] == group]
        report[group] = {"rule": None if rule is None else str(rule),
                         "fields": None if rule is None else dataclasses.asdict(rule),
                         "held_out": score(records, held, rule) if held else None,
                         "held_out_off": score(records, held, None) if held else None,
                         "checks": {c: score(checks, [c], rule) for c in checks},
                         "checks_off": {c: score(checks, [c], None) for c in checks}}
    return report


def box_only_table(records: dict, folds: dict) -> list[dict]:
    """Per case and box: box-only Dice and margin slices before (lung window for CT, no presence
    rule) and after (the window of higher result quality, the fold's presence rule)."""
    rows = []
    for name, case in records.items():
        rule, slice_mm = folds[case["group"]], case["slice_mm"]
        after = {r["box"]: r for r in window_runs(case)}
        for run in case["runs"]:
            if run["window"] not in ("lung", "auto"):
                continue
            b = replay(run, case["truth_total"], None, slice_mm)
            a = replay(after[run["box"]], case["truth_total"], rule, slice_mm)
            rows.append({"case": name, "box": run["box"], "window": after[run["box"]]["window"],
                         "dice_before": round(b["dice"], 4), "dice_after": round(a["dice"], 4),
                         "margin_empty_before": f"{b['margin_empty']}/{b['margin']}",
                         "margin_empty_after": f"{a['margin_empty']}/{a['margin']}"})
    return rows


def click_runs(case: dict, engine, clicks: int) -> dict:
    """The protocol on every box with per-step slice evidence (for the quality terms)."""
    image, label = case["image"], case["label"]
    context = engine.open(image)
    captured, original = [], context.predict

    def predict(*args, **kwargs):
        result = original(*args, **kwargs)
        captured.append([e for *_, e in result.state["slices"].values() if e.get("area")])
        return result

    context.predict = predict
    runs = []
    for name, box in box_variants(label).items():
        captured.clear()
        run = run_interactive(image, label, engine, clicks=clicks, box_lps=box, context=context)
        for step, evidence in zip(run["steps"], captured):
            step["terms"] = {t: quality_of(evidence, t) for t in QUALITY_TERMS}
        runs.append({"box": name, **{k: run[k] for k in ("box_lps", "steps", "margin_slices", "noc85", "noc90")}})
        print(case["name"], name, [s["dice"] for s in run["steps"]], flush=True)
    return {"name": case["name"], "group": case["group"], "runs": runs}


def quality_of(evidence: list[dict], term: str) -> float:
    if not evidence:
        return 0.0
    return float(np.average([QUALITY_TERMS[term](e) for e in evidence], weights=[e["area"] for e in evidence]))


def steps_of(cases: list[dict]) -> list[dict]:
    return [s for c in cases for r in c["runs"] for s in r["steps"]]


def group_rho(cases: list[dict], term: str) -> dict[str, float]:
    """Spearman rho of ``term`` against Dice within each group (a lesion and its sub-cases)."""
    rho = {}
    for group in sorted({c["group"] for c in cases}):
        steps = steps_of([c for c in cases if c["group"] == group])
        rho[group] = float(spearmanr([s["terms"][term] for s in steps], [s["dice"] for s in steps])[0])
    return rho


def choose_quality(cases: list[dict]) -> tuple[str, float]:
    """(term, threshold): the term whose worst within-group rho against Dice is highest (it must rank
    the results of every lesion, and a pooled rho can come from telling lesions apart), and its best
    balanced-accuracy threshold over all the steps."""
    steps = steps_of(cases)
    dice = [s["dice"] for s in steps]
    term = max(QUALITY_TERMS, key=lambda t: min(group_rho(cases, t).values()))
    failed = np.array(dice) < FAILURE_DICE
    values = np.array([s["terms"][term] for s in steps])

    def balanced(t):
        flagged = values < t
        tpr = flagged[failed].mean() if failed.any() else 1.0
        tnr = (~flagged[~failed]).mean() if (~failed).any() else 1.0
        return (tpr + tnr) / 2
    return term, max(QUALITY_THRESHOLDS, key=balanced)


def quality_folds(cases: list[dict], groups=CASES) -> dict:
    folds = {g: choose_quality([c for c in cases if c["group"] != g]) for g in groups}
    folds["all"] = choose_quality(cases)
    return folds


def quality_report(cases: list[dict], folds: dict, groups=CASES) -> dict:
    """Pooled Spearman rho of each step's held-out quality against Dice, and the flags."""
    quality, dice, flagged = [], [], []
    for case in cases:
        term, threshold = folds[case["group"]]
        for s in steps_of([case]):
            quality.append(s["terms"][term])
            dice.append(s["dice"])
            flagged.append(s["terms"][term] < threshold)
    failed, flagged = np.array(dice) < FAILURE_DICE, np.array(flagged)
    return {"spearman_rho": round(float(spearmanr(quality, dice)[0]), 3), "steps": len(dice),
            "failures": int(failed.sum()), "failures_flagged": int((failed & flagged).sum()),
            "successes_flagged": int((~failed & flagged).sum()),
            "held_out_rho_per_group": {g: round(group_rho([c for c in cases if c["group"] == g], folds[g][0])[g], 3)
                                       for g in groups},
            "per_term_rho_all_steps": {t: round(float(spearmanr([s["terms"][t] for s in steps_of(cases)], dice)[0]), 3)
                                       for t in QUALITY_TERMS},
            "per_term_rho_per_group": {t: {g: round(r, 3) for g, r in group_rho(cases, t).items()} for t in QUALITY_TERMS}}


def before_after(cases: list[dict]) -> list[dict]:
    """Dice of the box alone and after 3 clicks per case and box: interactive_before.json (the
    previous engine, benchmarks/interactive_before.py) against these runs."""
    path = RESULTS / "interactive_before.json"
    before = json.loads(path.read_text()) if path.exists() else {}
    rows = []
    for case in cases:
        for run in case["runs"]:
            old = before.get(case["name"], {}).get(run["box"])
            new = [s["dice"] for s in run["steps"]]
            rows.append({"case": case["name"], "box": run["box"], "box_before": old[0] if old else None,
                         "box_after": new[0], "click3_before": old[min(3, len(old) - 1)] if old else None,
                         "click3_after": new[min(3, len(new) - 1)], "noc90": run["noc90"],
                         "margin_empty": f"{run['margin_slices']['empty']}/{run['margin_slices']['count']}"})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clicks", type=int, default=10)
    parser.add_argument("--cases", nargs="*", help="cases to run the click protocol on (default all)")
    parser.add_argument("--skip-clicks", action="store_true", help="reuse the loco_tune_interactive*.json runs")
    parser.add_argument("--part", default="", help="suffix of this run's loco_tune_interactive<part>.json")
    args = parsed_with_cache(parser)
    records = json.loads((RESULTS / "loco_slices.json").read_text())
    checks_path = RESULTS / "loco_checks.json"
    checks = json.loads(checks_path.read_text()) if checks_path.exists() else {}
    folds = presence_folds(records, checks)
    report = {"presence_feature_auc": {"tuning": feature_auc(records), "checks": feature_auc(checks)},
              "presence_folds": {name: presence_report(records, checks, f) for name, f in folds.items()},
              "box_only": box_only_table(records, folds["plain"])}
    interactive_path = RESULTS / f"loco_tune_interactive{args.part}.json"
    if args.skip_clicks:
        found = [c for path in sorted(RESULTS.glob("loco_tune_interactive*.json")) for c in json.loads(path.read_text())]
        cases = list({c["name"]: c for c in reversed(found)}.values())[::-1]  # each case once
    else:
        cases = json.loads(interactive_path.read_text()) if interactive_path.exists() else []
        for name, case in all_cases().items():
            if args.cases and name not in args.cases:
                continue
            engine = load_engine("litemedsam")
            cases = [c for c in cases if c["name"] != name] + [click_runs({"name": name, **case}, engine, args.clicks)]
            interactive_path.write_text(json.dumps(to_jsonable(cases)))
    for case in cases:
        case["summary"] = case_summary(case)
    qfolds = quality_folds(cases)
    report["quality_folds"] = {g: {"term": t, "threshold": th} for g, (t, th) in qfolds.items()}
    report["quality"] = quality_report(cases, qfolds)
    report["summary"] = {c["name"]: c["summary"] for c in cases}
    report["before_after"] = before_after(cases)
    (RESULTS / "loco_tune.json").write_text(json.dumps(to_jsonable(report), indent=1))
    plot_cases(cases, RESULTS / "loco_tune_interactive.png")
    print(json.dumps(to_jsonable({k: report[k] for k in ("presence_folds", "quality_folds", "quality")}), indent=1))


if __name__ == "__main__":
    main()
