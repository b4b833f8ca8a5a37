"""``rtsam demo``: dose box and DVHs, interactive segmentation, and an ITV on the real example data."""

from __future__ import annotations

from .common import print_table, progress_bar


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "demo", help="the main job end to end on the example data (fetched when missing)",
        description="(a) breast RT case: dose box at 0.8 x Dmax and DVHs against the planning system's; (b) a real "
        "brain MR lesion: box, then 3 simulated clicks, Dice per step; (c) a 4-phase synthetic 4DCT from the lung "
        "case and its ITV. Writes masks, an overlay PNG per step, summary.json and summary.md.",
    )
    p.add_argument("--out", default="rtsam-demo", help="output folder (default rtsam-demo)")
    p.add_argument("--engine", help="engine name (default litemedsam)")
    p.add_argument("--device", default="cpu", help="torch device")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..demo import run_demo, table_rows
    from ..errors import InputError

    bar, callback = progress_bar(desc="demo")
    try:
        with bar:
            summary = run_demo(args.out, args.engine, args.device, callback)
    except OSError as error:  # a full disk or a folder that turned unwritable while writing the outputs
        raise InputError(f"cannot write the demo outputs ({error.strerror or error})",
                         error.filename or args.out) from None
    print_table(table_rows(summary), ["part", "case", "step", "dice", "note"])
    timings = summary["timings_s"]
    print(f"{timings['total_s']:.0f} s ({timings['cpu_s']:.0f} s CPU); masks, overlays, summary.json and summary.md "
          f"in {args.out}")
    return 0
