"""``rtsam train-itv``: fit a SAM 3 LoRA adapter for one task on a few annotated volumes."""

from __future__ import annotations

from dataclasses import fields

from ..devices import add_device_argument
from .common import print_json, print_table, progress_bar

HELP = """Fits LoRA adapters on a local SAM 3 folder (--base) so that the sam3 engine segments TASK
on your images. Each epoch trains on every slice with label voxels plus the hard negatives:
label-free slices on which the current model wrongly fires. Use the adapter with
  rtsam segment IMAGE --engine sam3 --checkpoint ADAPTER_DIR --task TASK --out MASK"""


def register(subparsers) -> None:
    p = subparsers.add_parser("train-itv", help="fit a SAM 3 LoRA adapter on a few annotated volumes", description=HELP)
    p.add_argument("inputs", nargs="+", metavar="IMAGE_LABEL_PAIRS_OR_MANIFEST",
                   help="IMAGE LABEL [IMAGE LABEL ...] (NRRD/NIfTI/MHA/DICOM), or one manifest as for rtsam train")
    p.add_argument("--base", required=True, metavar="SAM3_DIR",
                   help="local SAM 3 folder (config.json, *.safetensors, tokenizer; e.g. facebook/sam3)")
    p.add_argument("--task", required=True, help="the text prompt the adapter is trained for (e.g. tumour)")
    p.add_argument("--out", required=True, metavar="ADAPTER_DIR", help="output folder: adapter and training.json")
    p.add_argument("--rank", type=int, default=8, help="LoRA rank (default 8)")
    p.add_argument("--alpha", type=float, default=16.0, help="LoRA alpha (default 16)")
    p.add_argument("--dropout", type=float, default=0.05, help="LoRA dropout (default 0.05)")
    p.add_argument("--targets", nargs="+", metavar="PATTERN",
                   help="glob patterns of the linear layers to adapt, e.g. 'detr_*.[qv]_proj' (default: query and "
                        "value projections of the vision backbone and the DETR encoder and decoder)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--batch-size", type=int, default=2, help="slices per step")
    p.add_argument("--hard-negatives", type=int, default=8, help="hard negative slices per epoch (0: none)")
    p.add_argument("--mine-pool", type=int, default=64, help="negative slices scored per epoch to find them")
    p.add_argument("--fire-fraction", type=float, default=0.001,
                   help="a slice fires when the predicted mask covers more than this fraction of it")
    p.add_argument("--score-threshold", type=float, default=0.5, help="instance score kept, as in the engine")
    p.add_argument("--modality", choices=["CT", "MR"], help="intensity window (default: from the image)")
    add_device_argument(p)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from ..engines.sam3_model import check_folder
    from ..train.sam3_itv import ITVTrainOptions, load_cases, train_itv

    check_folder(Path(args.base).expanduser())
    cases = load_cases(args.inputs, args.task)
    names = {f.name for f in fields(ITVTrainOptions)}
    options = ITVTrainOptions(**{k: v for k, v in vars(args).items() if k in names and v is not None})
    bar, callback = progress_bar(desc="train-itv")
    with bar:
        summary = train_itv(cases, options, progress=callback)
    if args.json:
        print_json(summary)
    else:
        print_table(summary["history"], ["epoch", "loss", "hard_negatives", "fired", "seconds"])
        params = summary["parameters"]
        print(f"{summary['adapter']}: LoRA adapter ({params['trainable']} of {params['total']} parameters trained), "
              f"loss {summary['initial_loss']:.4f} -> {summary['final_loss']:.4f}, "
              f"{summary['hard_negatives_mined']} hard negatives mined")
    return 0
