"""Helpers shared by the sub-commands: JSON output, progress bars."""

from __future__ import annotations

import json
import sys

import numpy as np

from ..devices import add_device_argument


def to_jsonable(value):
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None if np.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


def print_json(value) -> None:
    json.dump(to_jsonable(value), sys.stdout, indent=2)
    sys.stdout.write("\n")


def print_table(rows: list[dict], columns: list[str]) -> None:
    """Plain aligned table for humans (``--json`` gives the machine form)."""
    cells = [[_fmt(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) if cells else len(c) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    for r in cells:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths)))


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return "-" if value is None else str(value)


def progress_bar(total: float = 1.0, desc: str = ""):
    """A tqdm bar on stderr and a ``ProgressCallback`` driving it."""
    from tqdm import tqdm

    bar = tqdm(total=100, desc=desc, file=sys.stderr, leave=False, disable=not sys.stderr.isatty())

    def callback(fraction: float, message: str = "") -> None:
        bar.n = int(round(100 * min(max(fraction / total, 0.0), 1.0)))
        if message:
            bar.set_postfix_str(message, refresh=False)
        bar.refresh()

    return bar, callback


def add_engine_arguments(parser, checkpoint_help: str = "weights file replacing the engine's registered weights") -> None:
    """``--engine``, ``--checkpoint`` and ``--device`` of every command that runs a model."""
    parser.add_argument("--engine", help="engine name (default litemedsam; see rtsam/engines/models.json)")
    parser.add_argument("--checkpoint", help=checkpoint_help)
    add_device_argument(parser)


def add_ct_window(parser) -> None:
    """``--ct-window`` for the litemedsam engine (names from rtsam.engines.litemedsam_prep.CT_WINDOWS)."""
    parser.add_argument("--ct-window", choices=("auto", "lung", "soft-tissue"), default="auto",
                        help="litemedsam CT window: auto (a new box is predicted in both, the result of higher "
                             "quality is kept), lung (W1500/L-600) or soft-tissue (W400/L40)")


def add_presence(parser) -> None:
    """``--presence`` for the litemedsam engine (its opt-in PRESENCE_RULE)."""
    parser.add_argument("--presence", choices=("off", "on"), default="off",
                        help="litemedsam: on leaves the slices of a loose box where the object seems to have ended "
                             "empty (off by default: chosen without the case, such rules emptied 45 of 52 such slices "
                             "but cost some boxes Dice; see the README)")


def add_zoom(parser) -> None:
    """``--zoom-below-px`` for the litemedsam engine (an opt-in ZoomRule)."""
    parser.add_argument("--zoom-below-px", type=float, metavar="N",
                        help="litemedsam, CT: a box spanning under N pixels of the model's 256 grid is also seen in "
                             "a region 5x its side (at least 40 mm), scaled up, and that view kept when its result's "
                             "quality is higher (off by default: no such rule kept its gains on small nodules without "
                             "losses on other boxes; see the README)")


def add_prompt_policy(parser) -> None:
    """``--allow-untrained-prompts`` for the sam3d engine."""
    parser.add_argument("--allow-untrained-prompts", action="store_true",
                        help="sam3d: feed box/text prompts to branches the weights never trained (SAM-Med3D's own "
                             "files); by default the box then only places the crop and the text is ignored")


def engine_options(args) -> dict:
    """Engine keyword options from the command line (only those the user changed)."""
    options = {} if args.ct_window == "auto" else {"ct_window": args.ct_window}
    if args.presence == "on":
        from ..engines.litemedsam import PRESENCE_RULE

        options["presence"] = PRESENCE_RULE
    if getattr(args, "zoom_below_px", None) is not None:
        from ..engines.litemedsam_prep import ZoomRule

        options["zoom"] = ZoomRule(args.zoom_below_px, by_quality=True, ct_only=True)
    if getattr(args, "allow_untrained_prompts", False):
        options["allow_untrained_prompts"] = True
    return options
