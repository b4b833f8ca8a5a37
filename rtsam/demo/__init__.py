"""``rtsam demo``: the main job end to end on the real example data and the default engine.

(a) breast RT case: dose box at 0.8 x Dmax, DVHs against the planning system's; (b) a real
brain MR lesion: box, then simulated clicks, Dice per step; (c) a synthetic 4DCT from the lung
case and its ITV. Masks, one overlay PNG per step, ``summary.json`` and ``summary.md`` go into
the output folder.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from ..engines.base import ProgressCallback
from ..errors import InputError
from ..io.files import write_atomically
from . import parts

PARTS = ("a_breast_rt", "b_brain_interactive", "c_lung_4dct_itv")


def run_demo(out: str | Path, engine_name: str | None = None, device: str = "cpu",
             progress: ProgressCallback | None = None) -> dict:
    """Run the three parts into ``out``; returns the summary (also written as summary.json / .md)."""
    from ..engines.registry import load_engine

    out = Path(out)
    folders = [out / name for name in PARTS]
    try:
        for folder in folders:
            folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InputError(f"cannot create the output folder ({error.strerror or error})", out) from None
    report = progress or (lambda fraction, message: None)
    timings, start, cpu = {}, time.perf_counter(), time.process_time()

    def part(index: int, message: str) -> ProgressCallback:
        _say(f"({'abc'[index]}) {message}")
        return lambda fraction, note="": report((index + min(max(fraction, 0.0), 1.0)) / len(PARTS), note)

    mark = time.perf_counter()
    breast = parts.breast_rt(folders[0], part(0, "breast RT: dose box at 0.8 x Dmax, DVHs vs the planning system"))
    timings["a_s"] = time.perf_counter() - mark
    engine = load_engine(engine_name, device=device)
    mark = time.perf_counter()
    part(1, f"{parts.INTERACTIVE_CASE} MR: box, then 3 simulated clicks ({engine.name})")(0.0)
    brain = parts.brain_interactive(folders[1], engine)
    timings["b_s"] = time.perf_counter() - mark
    mark = time.perf_counter()
    lung = parts.lung_itv(folders[2], engine, part(2, f"{parts.ITV_CASE}: 4-phase synthetic 4DCT and its ITV"))
    timings["c_s"] = time.perf_counter() - mark
    report(1.0, "done")
    timings["total_s"] = time.perf_counter() - start
    timings["cpu_s"] = time.process_time() - cpu  # all threads; below total_s x cores when the machine is shared
    summary = {"engine": engine.name, "weights": engine.weights_label, "device": device,
               "timings_s": {k: round(v, 1) for k, v in timings.items()},
               "a_breast_rt": breast, "b_brain_interactive": brain, "c_lung_4dct_itv": lung}
    write_summary(summary, out)
    return summary


def _say(message: str) -> None:
    print(f"rtsam demo: {message}", file=sys.stderr, flush=True)


def table_rows(summary: dict) -> list[dict]:
    """The short table: one row per step with its Dice (or, for the dose box, the target inside it)."""
    breast, brain, lung = (summary[name] for name in PARTS)
    large = [r for r in breast["dvh"] if r["tps_volume_cc"] > 10 and r["structure"] != "BODY"]
    rows = [{"part": "a", "case": "breast RT", "step": "dose box 0.8 Dmax", "dice": None,
             "note": f"{breast['target']} in box {100 * breast['target_in_box']:.0f} %; DVH mean dose within "
                     f"{max(abs(r['mean_diff_percent']) for r in large):.1f} % of the TPS (> 10 cc)"}]
    for step in brain["steps"]:
        sign = "" if step["positive"] is None else (" (+)" if step["positive"] else " (-)")
        rows.append({"part": "b", "case": brain["case"], "step": step["step"] + sign, "dice": step["dice"], "note": ""})
    for row in lung["per_phase"]:
        rows.append({"part": "c", "case": f"{lung['case']} 4DCT", "step": f"phase {row['phase_percent']:g} %",
                     "dice": row["dice"], "note": ""})
    rows.append({"part": "c", "case": f"{lung['case']} 4DCT", "step": "ITV", "dice": lung["itv_dice"],
                 "note": f"{lung['itv_ml']} ml (truth {lung['truth_itv_ml']} ml)"})
    return rows


def write_summary(summary: dict, out: Path) -> None:
    from ..cli.common import to_jsonable

    text = json.dumps(to_jsonable(summary), indent=2) + "\n"
    write_atomically(out / "summary.json", lambda temp: Path(temp).write_text(text), ".json")
    markdown = summary_markdown(summary)
    write_atomically(out / "summary.md", lambda temp: Path(temp).write_text(markdown), ".md")


def summary_markdown(summary: dict) -> str:
    breast = summary["a_breast_rt"]
    timings = summary["timings_s"]
    lines = [f"# rtsam demo ({summary['engine']}, {summary['weights']}, {summary['device']}, "
             f"{timings['total_s']:.0f} s, {timings['cpu_s']:.0f} s CPU)", "",
             "| part | case | step | Dice | note |", "|---|---|---|---|---|"]
    for row in table_rows(summary):
        dice = "" if row["dice"] is None else f"{row['dice']:.3f}"
        lines.append(f"| {row['part']} | {row['case']} | {row['step']} | {dice} | {row['note']} |")
    lines += ["", f"## (a) DVH against the planning system (dose box {breast['dose_box']['box_lps_mm']} mm LPS, "
              f"Dmax {breast['dose_box']['dmax_gy']:.2f} Gy)", "",
              "| structure | cc | TPS cc | mean Gy | TPS mean Gy | diff % | D95 Gy | TPS D95 Gy |",
              "|---|---|---|---|---|---|---|---|"]
    for r in breast["dvh"]:
        lines.append(f"| {r['structure']} | {r['volume_cc']} | {r['tps_volume_cc']} | {r['mean_gy']} | "
                     f"{r['tps_mean_gy']} | {r['mean_diff_percent']:+.2f} | {r['d95_gy']} | {r['tps_d95_gy']} |")
    lines += ["", "## Files", ""] + [f"- `{f}`" for name in PARTS for f in summary[name]["files"]]
    return "\n".join(lines) + "\n"
