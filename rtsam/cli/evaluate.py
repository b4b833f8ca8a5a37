"""``rtsam evaluate``: overlap, surface-distance and volume metrics of a predicted mask."""

from __future__ import annotations

from .common import print_json, print_table


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "evaluate",
        help="Dice, IoU, HD95, ASSD and volumes of a mask against the truth",
        description="Compare two masks on the same grid (voxels > 0). Empty masks give defined values: "
        "both empty -> Dice 1, distances 0; one empty -> Dice 0, distances \"inf\".",
    )
    p.add_argument("pred", metavar="PRED", help="predicted mask (NRRD/NIfTI/MHA or DICOM folder)")
    p.add_argument("truth", metavar="TRUTH", help="ground-truth mask on the same grid")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..io import read_image
    from ..metrics import evaluate

    result = evaluate(read_image(args.pred), read_image(args.truth))
    if args.json:
        print_json(result)
    else:
        print_table([{"metric": k, "value": v} for k, v in result.items()], ["metric", "value"])
    return 0
