"""``rtsam train``: fine-tune the sam3d engine on a manifest of cases (one GPU, or many via torchrun)."""

from __future__ import annotations

from dataclasses import fields

from ..devices import add_device_argument
from .common import print_json, print_table

HELP = """Fine-tune sam3d with progressive prompts (text, dose/label box, simulated clicks) and the
small-target focus loss. Several GPUs or machines: launch with torchrun, e.g.
  torchrun --nproc_per_node=4 -m rtsam train MANIFEST --out DIR --amp"""


def register(subparsers) -> None:
    p = subparsers.add_parser("train", help="fine-tune the sam3d engine on your cases", description=HELP)
    p.add_argument("manifest", help="CSV/JSON manifest (image,label[,dose][,task][,patient]) or a folder of "
                                    "<case>_image/_label[/_dose] NIfTI/NRRD files")
    p.add_argument("--out", required=True, help="output folder: best.pth, last.pt, log.jsonl")
    p.add_argument("--config", default="vit_b", choices=["vit_b", "tiny"])
    p.add_argument("--init", help="initial weights (SAM-Med3D or rtsam checkpoint); default: from scratch")
    p.add_argument("--train", default="all", choices=["all", "decoder", "lora"],
                   help="all; decoder = prompt encoder + text adapter + mask decoder (frozen encoder); "
                        "lora = decoder side + LoRA on the encoder's qkv")
    p.add_argument("--lora-rank", type=int, default=8)
    p.add_argument("--epochs", type=int, default=50)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--accumulate", type=int, default=1, help="gradient accumulation steps")
    p.add_argument("--amp", action="store_true", help="mixed precision (CUDA only)")
    p.add_argument("--val-fraction", type=float, default=0.2)
    p.add_argument("--patience", type=int, default=10, help="early stop after N epochs without gain (0: never)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    add_device_argument(p)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--task", help="task text for rows without one (and for folder manifests)")
    p.add_argument("--allow-new-tasks", action="store_true", help="accept tasks the --init checkpoint was not trained on")
    p.add_argument("--skip-bad", action="store_true", help="drop unusable manifest rows (reported) instead of refusing")
    p.add_argument("--iterations", type=int, default=3, help="click-simulation iterations per sample")
    p.add_argument("--clicks", type=int, default=4, help="clicks per iteration")
    p.add_argument("--crops-per-case", type=int, default=1, help="augmented crops per case per epoch")
    p.add_argument("--no-augment", dest="augment", action="store_false", help="no flips/rotations/intensity changes")
    p.add_argument("--text-model", help="text encoder folder (e.g. Bio_ClinicalBERT); default: bundled MiniLM")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..train.loop import TrainOptions, train

    names = {f.name for f in fields(TrainOptions)}
    summary = train(TrainOptions(**{k: v for k, v in vars(args).items() if k in names}))
    if summary["rank"] != 0:  # under torchrun, only the first process reports
        return 0
    if args.json:
        print_json(summary)
    else:
        print_table(summary["history"], ["epoch", "train_loss", "train_dice", "val_dice_box", "val_dice", "seconds"])
        print(f"best validation Dice {summary['best_val_dice']:.4f}: {summary['best_checkpoint']}")
    return 0
