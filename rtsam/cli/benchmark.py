"""``rtsam benchmark interactive``: Dice after a label box and after each simulated click,
for one image/label pair or a folder (or manifest) of cases; ``rtsam benchmark nodules``: a case
folder of small lung nodules inserted into a real chest CT."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .common import add_ct_window, add_engine_arguments, add_presence, add_prompt_policy, add_zoom, engine_options, print_json, print_table, to_jsonable

STEP_COLUMNS = ["step", "positive", "dice", "volume_error_ml", "hd95_mm", "quality", "low_quality", "embed_ms",
                "decode_ms", "total_ms"]


def register(subparsers) -> None:
    p = subparsers.add_parser("benchmark", help="accuracy benchmarks (interactive protocol)")
    sub = p.add_subparsers(dest="benchmark", metavar="BENCHMARK", required=True)
    q = sub.add_parser(
        "interactive", help="box from the label plus a margin, then simulated clicks",
        description="Box from the label plus a margin, then simulated clicks, each at the centre of the largest "
        "error region (positive for a false negative); prints Dice, volume error, HD95, quality and time per "
        "step. With --cases: every case of a folder (<name>_image.* / <name>_label.*) or JSON manifest, for box "
        "margins 0, 3, 5, 10 mm and a seeded jittered box, up to --clicks clicks, with NoC@85 / NoC@90.",
    )
    source = q.add_mutually_exclusive_group(required=True)
    source.add_argument("--image", help="image file or DICOM folder (one case, with --label)")
    source.add_argument("--cases", help="case folder or JSON manifest [{name, image, label[, structure]}]")
    q.add_argument("--label", help="0/1 label on the image's grid, or an RTSTRUCT file")
    q.add_argument("--structure", metavar="NAME",
                   help="RTSTRUCT label: the structure to rasterise on the image grid (default: its only one)")
    add_engine_arguments(q)
    add_ct_window(q)
    add_presence(q)
    add_zoom(q)
    add_prompt_policy(q)
    q.add_argument("--box-from-label", action="store_true", default=True,
                   help="derive the box from the label (the protocol; always on)")
    q.add_argument("--margin-mm", type=float, default=5.0, help="one case: box margin around the label (default 5)")
    q.add_argument("--margins", type=float, nargs="+", default=[0.0, 3.0, 5.0, 10.0],
                   help="--cases: box margins in mm (default 0 3 5 10)")
    q.add_argument("--jitter-mm", type=float, default=3.0, help="--cases: jittered box, faces moved up to this (0: none)")
    q.add_argument("--seed", type=int, default=0, help="--cases: seed of the jittered box")
    q.add_argument("--clicks", type=int, help="simulated clicks (default 3; 10 with --cases)")
    q.add_argument("--json", action="store_true", help="print JSON")
    q.add_argument("--out", help="--cases: also write the JSON report here")
    q.add_argument("--plot", help="--cases: write a PNG of Dice against clicks per case here")
    q.set_defaults(func=run)
    n = sub.add_parser(
        "nodules", help="a case folder of small lung nodules inserted into a real chest CT",
        description="Writes <out>/nodule<n>_image.nrrd / _label.nrrd (one nodule each, 0.5-3 mL, made of the "
        "voxels of the CT's own lesion, blended in by partial volume at a site deep in aerated lung) and "
        "nodules.json (sites, radii, volumes); run them with 'rtsam benchmark interactive --cases <out>'.",
    )
    n.add_argument("--image", required=True, help="chest CT (file or DICOM folder)")
    n.add_argument("--label", required=True, help="its lesion label: the tumour tissue the nodules are made of")
    n.add_argument("--out", required=True, help="folder to write the cases into")
    n.add_argument("--count", type=int, default=6, help="number of nodules (default 6)")
    n.add_argument("--seed", type=int, default=1, help="seed of sites, shapes and sizes (default 1)")
    n.set_defaults(func=run_nodules)


def run_nodules(args) -> int:
    from ..io import read_image, write_image
    from ..nodules import nodule_cases

    image, label = read_image(args.image), read_image(args.label)
    nodules = nodule_cases(image, label, args.count, args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for number, nodule in enumerate(nodules, start=1):
        name = f"nodule{number}"
        write_image(nodule.image, out / f"{name}_image.nrrd")
        write_image(nodule.label, out / f"{name}_label.nrrd")
        rows.append({"name": name, "site_lps": [round(float(v), 1) for v in nodule.site_lps],
                     "radii_mm": [round(r, 1) for r in nodule.radii_mm], "volume_ml": round(nodule.volume_ml, 2),
                     "slices": int((nodule.label.array > 0).any(axis=(1, 2)).sum())})
    provenance = {"image": str(args.image), "label": str(args.label), "seed": args.seed,
                  "synthetic": "shape and place; the tissue is the label's own voxels", "nodules": rows}
    (out / "nodules.json").write_text(json.dumps(provenance, indent=1))
    print_table(rows, ["name", "volume_ml", "slices", "radii_mm", "site_lps"])
    return 0


def run(args) -> int:
    from ..engines.registry import load_engine
    from ..errors import InputError

    clicks = args.clicks if args.clicks is not None else (10 if args.cases else 3)
    if clicks < 0 or args.margin_mm < 0 or min(args.margins) < 0 or args.jitter_mm < 0:
        raise InputError("--clicks, --margin-mm, --margins and --jitter-mm must be >= 0")
    if args.image and not args.label:
        raise InputError("--image needs --label")
    if args.cases:
        from ..benchmark_cases import find_cases
        cases = find_cases(args.cases)  # bad input fails before the engine loads
    else:
        from ..benchmark_interactive import check_pair
        from ..io import read_image, read_label
        image = read_image(args.image)
        label = read_label(args.label, image, args.structure)
        check_pair(image, label)
    engine = load_engine(args.engine, checkpoint=args.checkpoint, device=args.device, **engine_options(args))
    if args.cases:
        return run_cases(args, cases, engine, clicks)
    return run_one(args, image, label, engine, clicks)


def run_one(args, image, label, engine, clicks: int) -> int:
    from ..benchmark_interactive import run_interactive

    report = run_interactive(image, label, engine, clicks=clicks, margin_mm=args.margin_mm)
    if args.json:
        print_json({**report, "image": args.image, "label": args.label})
    else:
        print(f"engine {report['engine']} ({report['weights']})")
        print_table(report["steps"], STEP_COLUMNS)
        m = report["margin_slices"]
        print(f"NoC@85 {report['noc85']}  NoC@90 {report['noc90']}  margin slices left empty {m['empty']}/{m['count']}")
    return 0


def run_cases(args, cases: list[dict], engine, clicks: int) -> int:
    from ..benchmark_cases import TABLE_COLUMNS, case_summary, plot_cases, read_case, table_rows
    from ..benchmark_interactive import run_case, zoom_setting
    from ..engines.base import default_presence

    results = []
    for case in cases:
        print(f"case {case['name']}", file=sys.stderr, flush=True)
        image, label = read_case(case)
        report = run_case(image, label, engine, clicks=clicks, margins=args.margins, jitter_mm=args.jitter_mm,
                          seed=args.seed, progress=lambda box: print(f"  {box}", file=sys.stderr, flush=True))
        results.append({"name": case["name"], "image": str(case["image"]), "label": str(case["label"]), **report})
        results[-1]["summary"] = case_summary(results[-1])
    report = {"engine": engine.name, "weights": engine.weights_label, "presence": default_presence(engine),
              "zoom": zoom_setting(engine),
              "clicks": clicks, "cases": results}
    if args.out:
        Path(args.out).write_text(json.dumps(to_jsonable(report), indent=1))
    if args.plot:
        plot_cases(results, args.plot)
    if args.json:
        print_json(report)
    else:
        print(f"engine {engine.name} ({engine.weights_label})")
        print_table(table_rows(results), TABLE_COLUMNS)
    return 0
