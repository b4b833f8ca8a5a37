"""``--from-pacs`` / ``--to-pacs`` for batch commands (``rtsam segment``, ``rtsam itv``): fetch the
input study first, send the DICOM results after."""

from __future__ import annotations

import tempfile
from contextlib import contextmanager
from pathlib import Path

from .dicom import add_network_options, fetch_study, send_files


def add_pacs_options(parser, source: str) -> None:
    """The options; ``source`` names the argument that becomes a StudyInstanceUID with --from-pacs."""
    parser.add_argument("--from-pacs", metavar="AET@HOST:PORT|URL",
                        help=f"{source} is a StudyInstanceUID: fetch that study (C-GET, or DICOMweb from a URL) first")
    parser.add_argument("--to-pacs", metavar="AET@HOST:PORT", help="send the DICOM result to this PACS (C-STORE)")
    parser.add_argument("--pacs-dir", metavar="DIR", help="keep the fetched study in DIR (default: a temporary folder)")
    add_network_options(parser, prefix="--pacs-")


@contextmanager
def pacs_input(args, value):
    """``value`` itself, or with --from-pacs the folder the study ``value`` was fetched into."""
    if not args.from_pacs:
        yield value
        return
    with tempfile.TemporaryDirectory(prefix="rtsam-study-") as temporary:
        folder = Path(args.pacs_dir or temporary)
        fetch_study(args.from_pacs, str(value), folder, args)
        yield str(folder)


def send_result(files, args) -> dict:
    """C-STORE the result files to --to-pacs; what was sent, for the report."""
    sent = send_files(files, args.to_pacs, args)
    return {"to": args.to_pacs, "sent": [str(f) for f in sent]}


def beside(path, suffix: str) -> Path:
    """``dir/name.nii.gz`` -> ``dir/name<suffix>``: where a command writes the DICOM form of an output."""
    path = Path(path)
    return path.with_name(path.name.split(".")[0] + suffix)
