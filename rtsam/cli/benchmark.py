"""``rtsam benchmark interactive``: Dice after a label box and after each simulated click."""

from __future__ import annotations

from ..devices import add_device_argument
from .common import add_ct_window, add_prompt_policy, engine_options, print_json, print_table


def register(subparsers) -> None:
    p = subparsers.add_parser("benchmark", help="accuracy benchmarks (interactive protocol)")
    sub = p.add_subparsers(dest="benchmark", metavar="BENCHMARK", required=True)
    q = sub.add_parser(
        "interactive", help="box from the label plus a margin, then simulated clicks",
        description="Box from the label plus --margin-mm, then --clicks clicks, each at the centre of the "
        "largest error region (positive for a false negative); prints Dice and timings per step.",
    )
    q.add_argument("--image", required=True, help="image file or DICOM folder")
    q.add_argument("--label", required=True, help="0/1 label on the image's grid")
    q.add_argument("--engine", help="engine name (default litemedsam)")
    q.add_argument("--checkpoint", help="weights file replacing the engine's registered weights")
    add_ct_window(q)
    add_prompt_policy(q)
    add_device_argument(q)
    q.add_argument("--box-from-label", action="store_true", default=True,
                   help="derive the box from the label (the protocol; always on)")
    q.add_argument("--margin-mm", type=float, default=5.0, help="box margin around the label (default 5 mm)")
    q.add_argument("--clicks", type=int, default=3, help="number of simulated clicks (default 3)")
    q.add_argument("--json", action="store_true", help="print JSON")
    q.set_defaults(func=run)


def run(args) -> int:
    from ..benchmark_interactive import run_interactive
    from ..engines.registry import load_engine
    from ..errors import InputError
    from ..io import read_image

    if args.clicks < 0 or args.margin_mm < 0:
        raise InputError("--clicks and --margin-mm must be >= 0")
    image, label = read_image(args.image), read_image(args.label)
    engine = load_engine(args.engine, checkpoint=args.checkpoint, device=args.device, **engine_options(args))
    report = run_interactive(image, label, engine, clicks=args.clicks, margin_mm=args.margin_mm)
    if args.json:
        print_json({**report, "image": args.image, "label": args.label})
    else:
        print(f"engine {report['engine']} ({report['weights']})")
        print_table(report["steps"], ["step", "positive", "dice", "quality", "embed_ms", "decode_ms", "total_ms"])
    return 0
