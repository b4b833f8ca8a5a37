"""The ``rtsam`` command line: one module per sub-command, each with ``register(subparsers)``."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from .. import __version__
from ..errors import RTSAMError

# Sub-command modules, in the order ``rtsam --help`` lists them.
COMMANDS = [
    "dose_box",
    "dvh",
    "export_dicom",
    "dicom",
    "evaluate",
    "itv",
    "train",
    "train_itv",
    "serve",
    "web",
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


class _StderrHandler(logging.StreamHandler):
    """Warnings of rtsam.io (e.g. DICOM files left out of a series) as one line each on the current stderr."""

    def __init__(self, command: str):
        super().__init__()
        self.setFormatter(logging.Formatter(f"rtsam {command}: warning: %(message)s"))

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


def _show_warnings(command: str) -> None:
    logger = logging.getLogger("rtsam.io")
    for handler in [h for h in logger.handlers if isinstance(h, _StderrHandler)]:
        logger.removeHandler(handler)
    logger.addHandler(_StderrHandler(command))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _show_warnings(args.command)
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
