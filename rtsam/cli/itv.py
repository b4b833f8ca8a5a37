"""``rtsam itv``: ITV from a 4DCT; ``rtsam itv-generate``: a synthetic 4DCT; ``rtsam itv-bench``."""

from __future__ import annotations

import sys
from pathlib import Path

from ..devices import add_device_argument
from ..errors import InputError
from .common import add_engine_arguments, print_json, print_table, progress_bar
from .pacs_options import add_pacs_options, beside, pacs_input, send_result

# rtsam.itv.pipeline.PROPAGATIONS, spelled out: importing rtsam.itv loads scipy on every rtsam start
PROPAGATIONS = ("rigid", "deformable", "engine")


def register(subparsers) -> None:
    p = subparsers.add_parser("itv", help="ITV from a 4DCT: per-phase segmentation, temporal filtering, union")
    p.add_argument("phases", nargs="*", metavar="PHASE", help="phase volumes (NRRD/NIfTI), ordered by the number in the name")
    p.add_argument("--4d", dest="seq", metavar="FILE", help="Slicer volume sequence (.seq.nrrd) holding all phases")
    p.add_argument("--dicom", metavar="DIR", help="DICOM folder holding all phases")
    p.add_argument("--out", required=True, metavar="ITV", help="output ITV mask (.nrrd/.nii.gz) on the reference phase grid")
    p.add_argument("--reference-phase", type=int, default=0, metavar="K", help="position of the reference phase (0-based)")
    p.add_argument("--init-mask", metavar="MASK", help="lesion mask (e.g. GTV) on the reference phase")
    p.add_argument("--box", nargs=6, type=float, metavar=("X0", "Y0", "Z0", "X1", "Y1", "Z1"), help="3D box, LPS mm")
    p.add_argument("--click", nargs=4, action="append", default=[], metavar=("X", "Y", "Z", "pos|neg"),
                   help="click in LPS mm (repeatable)")
    p.add_argument("--task", metavar="TEXT", help="task text for text-prompted engines")
    p.add_argument("--propagation", choices=PROPAGATIONS, default="rigid",
                   help="rigid (default) / deformable: register the reference phase onto each phase and carry its "
                        "mask (the init mask, else the engine's result); engine: segment every phase with the engine")
    add_engine_arguments(p)
    p.add_argument("--phase-masks-dir", metavar="DIR", help="also write the filtered per-phase masks here")
    p.add_argument("--mip-out", metavar="FILE", help="also write the MIP-based ITV")
    p.add_argument("--window", type=int, default=3, help="temporal window in phases (odd, default 3)")
    p.add_argument("--temporal", choices=("majority", "median"), default="majority", help="temporal vote")
    p.add_argument("--voxelwise", action="store_true", help="replace masks by the voxel-wise vote (shrinks motion extremes)")
    p.add_argument("--margin-mm", type=float, nargs="+", metavar="MM",
                   help="box margin when propagating engine prompts between phases: one value or x y z (LPS mm; default: "
                        "the pipeline's MARGIN_MM, rtsam.itv.propagate)")
    p.add_argument("--out-dicom", metavar="FILE",
                   help="also write the ITV and each phase's mask (ITV, GTV_phase00, ...) as one DICOM file on the "
                        "reference phase (with --dicom its series; otherwise that phase is written as a CT series in "
                        "FILE's folder, <stem>_series)")
    p.add_argument("--dicom-format", choices=("rtstruct", "seg"), default="rtstruct", help="format of --out-dicom")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    add_pacs_options(p, "--dicom")  # --to-pacs sends the --out-dicom file (default <out stem>.rtstruct.dcm)
    p.set_defaults(func=run_itv_command)

    g = subparsers.add_parser("itv-generate", help="synthetic 4DCT from a CT and lesion mask (Lujan cos^4 breathing)")
    g.add_argument("image", help="CT (or MR) volume")
    g.add_argument("mask", help="lesion mask on the same grid")
    g.add_argument("--out-dir", required=True, help="folder for the phases, their masks and the truth ITV")
    g.add_argument("--format", choices=("seq", "files", "dicom"), default="seq", help="how to write the phases")
    g.add_argument("--phases", type=int, default=10)
    g.add_argument("--amplitude-si", type=float, default=10.0, help="superior-inferior amplitude, mm")
    g.add_argument("--amplitude-ap", type=float, default=4.0, help="anterior-posterior amplitude, mm")
    g.add_argument("--fade-mm", type=float, default=30.0, help="distance from the lesion where motion fades to 0")
    g.add_argument("--transient-fp", type=int, default=0, help="phases given a transient false positive in their mask")
    g.add_argument("--seed", type=int, default=0)
    g.set_defaults(func=run_generate_command)

    b = subparsers.add_parser("itv-bench", help="ITV speed and Dice on synthetic 4DCTs of the example scans")
    b.add_argument("--cases", nargs="+", default=["lung2", "brain1"], choices=("lung2", "brain1", "brain2"))
    b.add_argument("--phases", type=int, default=10)
    b.add_argument("--prompt", choices=("mask", "box"), default="mask",
                   help="start from the reference phase's true mask, or from a box 5 mm around it (engine)")
    b.add_argument("--propagation", choices=PROPAGATIONS, default="rigid")
    b.add_argument("--reference-phase", type=int, default=0, metavar="K",
                   help="phase whose true mask starts the run (0: end-inhale; phases/2: end-exhale, the scan itself)")
    b.add_argument("--engine", default=None)
    add_device_argument(b)
    b.add_argument("--crop-mm", type=float, default=None, help="crop the scans to the lesion box plus this margin")
    b.add_argument("--json", action="store_true")
    b.set_defaults(func=run_bench_command)


def run_itv_command(args) -> int:
    if args.from_pacs and not args.dicom:
        raise InputError("--from-pacs fetches the study given as --dicom STUDY_UID")
    if args.to_pacs and not args.out_dicom:
        args.out_dicom = str(beside(args.out, ".rtstruct.dcm"))
    with pacs_input(args, args.dicom) as dicom:
        return _itv(args, dicom)


def _itv(args, dicom) -> int:
    from ..engines.base import Click, Prompt
    from ..io import read_image, write_image
    from ..itv.phases import load_phases
    from ..itv.pipeline import run_itv
    from ..itv.propagate import MARGIN_MM

    phases = load_phases(args.phases or None, args.seq, dicom, args.reference_phase)
    init_mask = read_image(args.init_mask) if args.init_mask else None
    clicks = [Click(tuple(float(v) for v in c[:3]), _polarity(c[3])) for c in args.click]
    prompt = Prompt(task=args.task, box_lps=args.box, clicks=clicks)
    margin = args.margin_mm or list(MARGIN_MM)
    if len(margin) not in (1, 3):
        raise InputError(f"--margin-mm takes one value or three (x y z), got {len(margin)}")
    bar, callback = progress_bar(desc="itv")
    try:
        result = run_itv(phases, prompt, init_mask, args.engine, args.window, args.temporal, args.voxelwise,
                         tuple(margin) * (3 // len(margin)), args.device, args.checkpoint, args.propagation,
                         progress=callback)
    finally:
        bar.close()
    write_image(result.itv, args.out)
    if args.mip_out:
        write_image(result.mip_itv, args.mip_out)
    if args.phase_masks_dir:
        _write_phase_masks(result.phase_masks, phases.labels(), Path(args.phase_masks_dir), write_image)
    if args.out_dicom:
        result.report["dicom"] = _write_itv_dicom(result, phases, args)
    if args.to_pacs:
        written = result.report["dicom"]["written_reference_series"]
        result.report["pacs"] = send_result([args.out_dicom, *([written] if written else [])], args)
    for warning in result.report["warnings"]:
        print(f"rtsam itv: warning: {warning}", file=sys.stderr)
    if args.json:
        print_json(result.report)
    else:
        _print_report(result.report, args.out)
    return 0


def run_generate_command(args) -> int:
    from ..io import read_image, write_image
    from ..itv.dicom4d import write_dicom_phases
    from ..itv.generator import make_4dct
    from ..itv.seqnrrd import write_seq_nrrd

    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    generated = make_4dct(read_image(args.image), read_image(args.mask), args.phases, args.amplitude_si,
                          args.amplitude_ap, args.fade_mm, args.transient_fp, seed=args.seed)
    values = [v.metadata["phase_percent"] for v in generated.phases]
    if args.format == "seq":
        write_seq_nrrd(generated.phases, out / "4dct.seq.nrrd", values)
    elif args.format == "dicom":
        write_dicom_phases(generated.phases, out / "dicom", values)
    else:
        for volume, value in zip(generated.phases, values):
            write_image(volume, out / f"phase_{value:03.0f}.nrrd")
    write_seq_nrrd(generated.phase_masks, out / "masks.seq.nrrd", values)
    write_image(generated.phase_masks[0], out / "init_mask.nrrd")
    write_image(generated.truth_itv, out / "truth_itv.nrrd")
    print(f"wrote {args.phases} phases ({args.format}), masks.seq.nrrd, init_mask.nrrd (phase 0) and truth_itv.nrrd to {out}")
    return 0


def run_bench_command(args) -> int:
    from ..itv.bench import benchmark_case

    rows = [benchmark_case(case, args.phases, args.engine, args.crop_mm, args.device, args.propagation,
                           args.reference_phase, args.prompt) for case in args.cases]
    if args.json:
        print_json(rows)
    else:
        print_table(rows, ["case", "shape_kji", "phases", "prompt", "propagation", "reference_phase", "generation_s",
                           "itv_s", "itv_dice", "exact_motion_itv_dice", "mip_itv_dice_vs_truth", "phase_dice_mean",
                           "phase_dice_min"])
    return 0


def _write_itv_dicom(result, phases, args) -> dict:
    """The ITV and phase masks as one RTSTRUCT/SEG on the reference phase's DICOM series."""
    from ..io.dicom_export import Algorithm
    from ..itv.dicom_out import export_itv_dicom

    engine = result.report.get("engine")
    algorithm = Algorithm(f"rtsam itv ({engine or args.propagation})", "", "SEMIAUTOMATIC")
    written = export_itv_dicom(result.itv, result.phase_masks, phases.grid, args.out_dicom, args.dicom_format, algorithm)
    for name in written["empty_phases"]:
        result.report["warnings"].append(f"{name} is empty and left out of {written['path']}")
    return written


def _polarity(text: str) -> bool:
    value = text.lower()
    if value not in ("pos", "neg", "+", "-", "1", "0"):
        raise InputError(f"click polarity must be pos or neg, got {text!r}")
    return value in ("pos", "+", "1")


def _write_phase_masks(masks, labels, folder: Path, write_image) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for mask, label in zip(masks, labels):
        write_image(mask, folder / f"phase_{label}.nrrd")


def _print_report(report: dict, out: str) -> None:
    print(f"ITV {report['itv_volume_ml']} ml from {report['phases']} phases (reference {report['reference_phase']}, "
          f"propagation {report['propagation']}, engine {report['engine'] or 'none (init mask)'}) -> {out}")
    print_table([{**r, "offset_mm": r["offset_mm"]} for r in report["per_phase"]],
                ["label", "volume_ml", "raw_volume_ml", "offset_mm", "from_phase", "seconds"])
    motion = report["motion_mm"]
    print(f"motion (peak-to-peak, mm): x {motion['x_mm']}  y {motion['y_mm']}  z {motion['z_mm']}")
    print(f"MIP ITV: {report['mip_itv']['volume_ml']} ml, Dice vs ITV {report['mip_itv']['dice_vs_itv']}")
    print(f"removed components: {len(report['removed_components'])}; total {report['timings_s']['total_s']} s")
