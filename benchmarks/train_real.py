"""Fine-tune sam3d on the real pyradiomics cases and report validation Dice per epoch.

    python benchmarks/train_real.py                       # tiny config, CPU
    python benchmarks/train_real.py --config vit_b --device cuda --amp --epochs 20

Cases: brain1, brain2, breast1, lung2 (shared/data/pyradiomics); one is held out for
validation (--val-fraction 0.25). Prints one line per epoch and a JSON summary at the end.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rtsam.data import data_dir  # noqa: E402
from rtsam.train.loop import TrainOptions, train  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="tiny", choices=["tiny", "vit_b"])
    parser.add_argument("--device")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--crops-per-case", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--train", default="all", choices=["all", "decoder", "lora"])
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--clicks", type=int, default=4)
    parser.add_argument("--amp", action="store_true")
    parser.add_argument("--out", help="output folder (default: a temporary one)")
    args = parser.parse_args()
    out = args.out or tempfile.mkdtemp(prefix="rtsam-train-")
    summary = train(TrainOptions(
        manifest=str(data_dir() / "pyradiomics"), out=out, config=args.config, device=args.device, epochs=args.epochs,
        lr=args.lr, train=args.train, iterations=args.iterations, clicks=args.clicks, amp=args.amp,
        crops_per_case=args.crops_per_case, val_fraction=0.25, patience=0, task="Segment the tumour"))
    print(json.dumps({k: v for k, v in summary.items() if k != "history"}, indent=1))
    for r in summary["history"]:
        print(f"epoch {r['epoch']:2d}  loss {r['train_loss']:.4f}  train Dice {r['train_dice']:.3f}  "
              f"val Dice box {r['val_dice_box']:.3f}  val Dice after clicks {r['val_dice']:.3f}  {r['seconds']:.1f} s")


if __name__ == "__main__":
    main()
