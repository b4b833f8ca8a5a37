"""``rtsam bench``: sam3d embedding and click-decode times against a SwinUNETR forward."""

from __future__ import annotations

import json
import sys

from ..devices import add_device_argument
from .common import print_json, print_table

PARTS = ("compiled", "train", "litemedsam", "sam3")  # rtsam.bench_gpu.run_parts' parts


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "bench", help="time the sam3d embedding, one click decode, a plain ViT-B and a SwinUNETR forward",
        description="Median times in one process: sam3d 128^3 embedding (fast exact windowed attention and the "
                    "literal padded reference), one click decode against the cached embedding, MONAI's plain "
                    "ViT-B and SwinUNETR (feature_size 48) forwards on the same input; peak memory.")
    parser.add_argument("--json", action="store_true", help="print JSON")
    add_device_argument(parser)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per step; the median is reported (default 3)")
    parser.add_argument("--config", default="vit_b", choices=["vit_b", "tiny"], help="sam3d size (default vit_b)")
    parser.add_argument("--autocast", choices=["bf16", "fp16"],
                        help="also time the embedding under this autocast and report its error against float32")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile the image encoder first (skips the reference timing)")
    parser.add_argument("--all", action="store_true",
                        help="also the GPU-speed parts (rtsam.bench_gpu): compiled embed and decode, a training step, "
                             "LiteMedSAM box and click on lung2, SAM 3 per slice at batch 1 and 8")
    parser.add_argument("--parts", nargs="+", choices=PARTS, help="only these extra parts (implies --all)")
    parser.add_argument("--sam3-weights", metavar="DIR", help="SAM 3 folder for the sam3 part (default: random "
                                                             "weights, full-size config)")
    parser.add_argument("--save", nargs="?", const="benchmarks/results", metavar="DIR",
                        help="also write the JSON to DIR/<gpu>_<time>.json (default DIR: benchmarks/results)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from ..bench import run_bench

    result = run_bench(config=args.config, device=args.device, repeats=args.repeats,
                       autocast=args.autocast, compile_encoder=args.compile)
    parts = args.parts or (PARTS if args.all else ())
    if parts:
        from ..bench_gpu import run_parts

        result.update(run_parts(parts, args.config, result["device"], args.repeats, args.sam3_weights))
    if args.save:
        from ..bench_gpu import result_name
        from .common import to_jsonable

        folder = Path(args.save)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / result_name(result)
        path.write_text(json.dumps(to_jsonable(result), indent=2) + "\n")
        print(f"wrote {path}", file=sys.stderr)
    if args.json:
        print_json(result)
    else:
        print_table([{"measure": k, "value": v} for k, v in _flat(result).items()], ["measure", "value"])
    return 0


def _flat(report: dict, prefix: str = "") -> dict:
    """Nested parts as ``part.key`` rows for the table."""
    rows = {}
    for key, value in report.items():
        if isinstance(value, dict):
            rows.update(_flat(value, f"{prefix}{key}."))
        elif key != "trace":
            rows[prefix + key] = value
    return rows
