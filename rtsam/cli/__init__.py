"""The ``rtsam`` command line: one module per sub-command, each with ``register(subparsers)``."""

from __future__ import annotations

import argparse
import importlib
import sys

from .. import __version__
from ..errors import RTSAMError

# Sub-command modules, in the order ``rtsam --help`` lists them.
COMMANDS = [
    "dose_box",
    "dvh",
    "export_dicom",
    "evaluate",
    "itv",
    "train",
    "train_itv",
    "serve",
    "bench",
    "segment",
    "benchmark",
    "examples",
    "demo",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rtsam", description="Radiotherapy segmentation backend of SlicerRTSAM.")
    parser.add_argument("--version", action="version", version=f"rtsam {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except RTSAMError as error:
        print(f"rtsam {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"rtsam {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
