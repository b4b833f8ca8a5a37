"""``rtsam dvh``: cumulative DVH statistics of RTSTRUCT structures in an RTDOSE."""

from __future__ import annotations

from .common import print_json, print_table

COLUMNS = ["name", "volume_cc", "min_gy", "mean_gy", "max_gy", "d95_gy", "d2_gy"]


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "dvh",
        help="DVH statistics per structure",
        description="Volume, min/mean/max dose, D95 and D2 of each structure (supersampled dose grid).",
    )
    p.add_argument("dose", metavar="DOSE", help="RTDOSE DICOM file")
    p.add_argument("rtstruct", metavar="RTSTRUCT", help="RTSTRUCT DICOM file")
    p.add_argument("--structures", nargs="+", metavar="NAME", help="structure names (default: all with contours)")
    p.add_argument("--end-caps", choices=["slab", "plane"], default="slab",
                   help="slab: half a plane spacing beyond the first and last contour (default); "
                        "plane: the structure ends at those planes, as some planning systems compute")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..dvh import structure_dvh
    from ..io import read_rtdose, read_rtstruct

    dose = read_rtdose(args.dose)
    structures = read_rtstruct(args.rtstruct)
    names = args.structures or [s.name for s in structures.structures if s.contours]
    for name in names:  # fail on a missing name before any work
        structures.structure(name)
    rows = [structure_dvh(dose, structures, name, end_caps=args.end_caps).to_dict() for name in names]
    if args.json:
        print_json(rows)
    else:
        print_table(rows, COLUMNS)
        print(f"\ndose summation type: {dose.metadata.get('dose_summation_type') or 'not given'}")
    return 0
