"""``rtsam segment``: segment an image with a box (given or from the dose) and clicks."""

from __future__ import annotations

from .common import add_ct_window, add_engine_arguments, add_presence, add_prompt_policy, add_zoom, engine_options, print_json, progress_bar
from .pacs_options import add_pacs_options, beside, pacs_input, send_result


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "segment", help="segment an image from a box (or RTDOSE) and clicks",
        description="Writes a 0/1 mask on IMAGE's grid. The box comes from --box (LPS mm) or from the "
        "high-dose region of --dose; --click adds refinement clicks (LPS mm).",
    )
    p.add_argument("image", metavar="IMAGE", help="image file (NRRD/NIfTI/MHA) or DICOM folder")
    p.add_argument("--out", required=True, metavar="MASK", help="output mask (.nrrd, .nii, .nii.gz, .mha)")
    p.add_argument("--dose", metavar="DOSE", help="RTDOSE file: box around dose >= THRESHOLD x Dmax")
    p.add_argument("--threshold", type=float, default=0.8, help="dose fraction for the box (default 0.8)")
    p.add_argument("--task", help="task text (engines with a text branch)")
    p.add_argument("--patient", help="patient text (engines with a text branch)")
    p.add_argument("--box", type=float, nargs=6, metavar=("X0", "Y0", "Z0", "X1", "Y1", "Z1"), help="box in LPS mm")
    p.add_argument("--click", nargs=4, action="append", default=[], metavar=("X", "Y", "Z", "pos|neg"),
                   help="refinement click in LPS mm (repeatable)")
    add_engine_arguments(p, "weights replacing the engine's registered ones (for sam3: a SAM 3 or adapter folder)")
    add_ct_window(p)
    add_presence(p)
    add_zoom(p)
    add_prompt_policy(p)
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    add_pacs_options(p, "IMAGE")  # --to-pacs sends the mask as a DICOM SEG on IMAGE's series (<out stem>.seg.dcm)
    p.set_defaults(func=run)


def parse_click(values: list[str]):
    from ..engines.base import Click
    from ..errors import InputError

    *xyz, sign = values
    if sign.lower() not in ("pos", "neg"):
        raise InputError(f"a click ends with 'pos' or 'neg', got '{sign}'")
    try:
        coords = tuple(float(v) for v in xyz)
    except ValueError:
        raise InputError(f"click coordinates must be numbers, got {xyz}") from None
    return Click(coords, sign.lower() == "pos")


def run(args) -> int:
    with pacs_input(args, args.image) as image_path:
        return segment(args, image_path)


def segment(args, image_path) -> int:
    from ..devices import device_info
    from ..engines.registry import load_engine
    from ..errors import InputError
    from ..io import read_image, read_rtdose, write_image
    from ..session import Session

    image = read_image(image_path)
    if args.to_pacs and not image.metadata.get("files"):
        raise InputError("--to-pacs sends a DICOM SEG on the image's series: give a DICOM image", args.image)
    clicks = [parse_click(c) for c in args.click]
    if args.box is not None and args.dose:
        raise InputError("give either --box or --dose, not both")
    box = args.box
    if args.dose:
        from ..prompts.dose_box import dose_box

        box = dose_box(read_rtdose(args.dose), threshold=args.threshold, reference=image).box_lps
    engine = load_engine(args.engine, checkpoint=args.checkpoint, device=args.device, **engine_options(args))
    session = Session(image, engine)
    session.set_task(args.task, args.patient)
    if box is not None:
        session.set_box(box)
    for click in clicks:
        session.add_click(click.lps, click.positive)
    bar, callback = progress_bar(desc="segment")
    with bar:
        result = session.predict(progress=callback)
    path = write_image(result.mask.with_array(result.mask.array, engine=result.engine, weights=result.weights), args.out)
    summary = {**result.summary(), **device_info(engine.device), "out": str(path), "box_lps": session.prompt.box_lps,
               "clicks": len(clicks)}
    if args.to_pacs:
        summary["pacs"] = _send_seg(result, image, path, args)
    if args.json:
        print_json(summary)
    else:
        print(f"{path}: {summary['volume_ml']} mL, engine {summary['engine']} ({summary['weights']}), "
              f"quality {summary['quality']}" + (" (low quality, review)" if summary["low_quality"] else ""))
    return 0


def _send_seg(result, image, mask_path, args) -> dict:
    """The mask as a DICOM SEG on the image's series, written next to the mask and sent to --to-pacs."""
    from ..io.dicom_export import Algorithm, reference_of, write_dicom_seg

    algorithm = Algorithm(result.engine, str(result.weights or ""), "SEMIAUTOMATIC")
    seg = write_dicom_seg({"Lesion": result.mask}, reference_of(image), beside(mask_path, ".seg.dcm"), algorithm)
    return send_result([seg], args)
