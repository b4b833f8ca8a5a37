"""``rtsam bench``: sam3d embedding and click-decode times against a SwinUNETR forward."""

from __future__ import annotations

from ..devices import add_device_argument
from .common import print_json, print_table


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
    parser.set_defaults(func=run)


def run(args) -> int:
    from ..bench import run_bench

    result = run_bench(config=args.config, device=args.device, repeats=args.repeats,
                       autocast=args.autocast, compile_encoder=args.compile)
    if args.json:
        print_json(result)
    else:
        print_table([{"measure": k, "value": v} for k, v in result.items()], ["measure", "value"])
    return 0
