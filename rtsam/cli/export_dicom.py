"""``rtsam export-dicom``: masks -> DICOM SEG or RTSTRUCT referencing their image series."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputError
from .common import print_json

MASK_SUFFIXES = (".seg.nrrd", ".nii.gz", ".nrrd", ".nii", ".mha")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "export-dicom",
        help="masks to DICOM SEG or RTSTRUCT",
        description="Write masks (nonzero voxels, on the grid of the reference DICOM series) as one DICOM SEG or "
                    "RTSTRUCT that references the series' slices and copies its patient, study and frame of reference.",
    )
    p.add_argument("masks", nargs="+", metavar="MASK", help="mask files (NRRD, NIfTI, MHA) on the reference grid")
    p.add_argument("--reference", required=True, metavar="DIR",
                   help="DICOM folder (or one slice file) of the image series")
    p.add_argument("--series-uid", help="series to use when the folder holds several")
    p.add_argument("--out", required=True, metavar="FILE", help="output DICOM file")
    p.add_argument("--format", required=True, choices=["seg", "rtstruct"], help="DICOM SEG or RTSTRUCT")
    p.add_argument("--name", action="append", metavar="NAME",
                   help="segment name, once per mask in order (default: file names); preset names get their codes")
    p.add_argument("--engine", metavar="NAME", help="engine that made the masks (default: manual segmentation)")
    p.add_argument("--engine-version", default="", metavar="VERSION", help="weights label or version of the engine")
    p.add_argument("--automatic", action="store_true", help="the engine ran without user prompts")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..io import read_image
    from ..io.dicom_export import Algorithm, ExportSegment, read_reference, write_dicom_seg, write_rtstruct

    names = args.name or [_stem(m) for m in args.masks]
    if len(names) != len(args.masks):
        raise InputError(f"{len(names)} --name given for {len(args.masks)} masks; give one per mask or none")
    if args.automatic and not args.engine:
        raise InputError("--automatic describes an engine: give --engine too")
    reference = read_reference(args.reference, args.series_uid)
    segments = [ExportSegment(name, read_image(m)) for name, m in zip(names, args.masks)]
    algorithm = None
    if args.engine:
        algorithm = Algorithm(args.engine, args.engine_version, "AUTOMATIC" if args.automatic else "SEMIAUTOMATIC")
    write = write_dicom_seg if args.format == "seg" else write_rtstruct
    path = write(segments, reference, args.out, algorithm)
    report = {
        "path": str(path),
        "format": args.format,
        "series_uid": reference.volume.metadata.get("series_uid"),
        "segments": [{"name": s.name, "voxels": int(np.count_nonzero(s.mask.array)),
                      "volume_ml": float(np.count_nonzero(s.mask.array) * s.mask.voxel_volume_ml)} for s in segments],
    }
    if args.json:
        print_json(report)
    else:
        print(f"wrote {args.format} with {len(segments)} segment(s) to {path}")
    return 0


def _stem(path: str) -> str:
    name = Path(path).name
    suffix = next((s for s in MASK_SUFFIXES if name.lower().endswith(s)), Path(name).suffix)
    return name[: len(name) - len(suffix)] or name
