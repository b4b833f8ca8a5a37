"""``rtsam dose-box``: the dose-guided box prompt (voxels >= threshold x Dmax) of an RTDOSE."""

from __future__ import annotations

from .common import print_json, print_table


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "dose-box",
        help="3D box around the high-dose region of an RTDOSE",
        description="Box around the voxels receiving >= THRESHOLD x Dmax, in LPS mm and in voxel indices "
        "of the reference image (or of the dose grid).",
    )
    p.add_argument("dose", metavar="DOSE", help="RTDOSE DICOM file")
    p.add_argument("--reference", metavar="IMAGE", help="image (file or DICOM folder) whose voxel indices box_ijk uses")
    p.add_argument("--threshold", type=float, default=0.8, help="fraction of Dmax (default 0.8)")
    p.add_argument("--margin-mm", type=float, default=0.0, help="margin added on every side (mm)")
    p.add_argument("--min-size-mm", type=float, default=0.0, help="minimum box size per axis (mm)")
    p.add_argument("--near", type=float, nargs=3, metavar=("L", "P", "S"),
                   help="keep only the high-dose region nearest this LPS point (mm)")
    p.add_argument("--no-clip", action="store_true", help="do not clip the box to the image extent")
    p.add_argument("--shift-report", action="store_true", help="box IoU when the dose is shifted by 1-5 mm per axis")
    p.add_argument("--allow-frame-mismatch", action="store_true",
                   help="accept a reference image in another frame of reference")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..io import read_image, read_rtdose
    from ..prompts.dose_box import dose_box, shift_sensitivity
    from ..resample import check_compatible

    dose = read_rtdose(args.dose)
    reference = None
    if args.reference:
        reference = read_image(args.reference)
        check_compatible(dose, reference, allow_frame_mismatch=args.allow_frame_mismatch)
    options = dict(threshold=args.threshold, margin_mm=args.margin_mm, min_size_mm=args.min_size_mm,
                   component="nearest" if args.near else "all", near_lps=args.near, reference=reference,
                   clip=not args.no_clip)
    result = dose_box(dose, **options).to_dict()
    result["dose_summation_type"] = dose.metadata.get("dose_summation_type")  # PLAN, BEAM, FRACTION, ...
    if args.shift_report:
        result["shift_report"] = shift_sensitivity(dose, **options)
    if args.json:
        print_json(result)
        return 0
    for key in ("box_lps_mm", "box_ijk", "box_ijk_grid", "dmax_gy", "threshold_gy", "voxels", "components"):
        print(f"{key:13s} {result[key]}")
    print(f"dose summation type: {result['dose_summation_type'] or 'not given'}")
    if args.shift_report:
        print("\nbox IoU under dose shifts:")
        print_table(result["shift_report"], ["axis", "shift_mm", "iou"])
    return 0
