"""``rtsam benchmark interactive`` over many cases: the case list, the summary, a table and a plot.

A case folder holds pairs ``<name>_image.<ext>`` / ``<name>_label.<ext>`` (e.g. pyradiomics'
``lung2_image.nrrd`` / ``lung2_label.nrrd``); a manifest is a JSON list of
``{"name", "image", "label"}`` (paths relative to the manifest; the image may be a DICOM folder, the
label an RTSTRUCT file with an optional ``"structure"`` name).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .errors import InputError
from .volume import Volume

IMAGE_SUFFIX, LABEL_SUFFIX = "_image", "_label"


def find_cases(source: str | Path) -> list[dict]:
    """[{"name", "image", "label"[, "structure"]}] from a case folder or a JSON manifest."""
    source = Path(source)
    if source.is_dir():
        return _folder_cases(source)
    if source.is_file():
        return _manifest_cases(source)
    raise InputError("no such case folder or manifest", source)


def _folder_cases(folder: Path) -> list[dict]:
    cases = []
    for image in sorted(folder.iterdir()):
        stem, dot, ext = image.name.partition(".")
        if not stem.endswith(IMAGE_SUFFIX):
            continue
        name = stem[: -len(IMAGE_SUFFIX)]
        label = folder / f"{name}{LABEL_SUFFIX}{dot}{ext}"
        if label.exists():
            cases.append({"name": name, "image": image, "label": label})
    if not cases:
        raise InputError(f"no <name>{IMAGE_SUFFIX}.<ext> / <name>{LABEL_SUFFIX}.<ext> pairs in this folder", folder)
    return cases


def _manifest_cases(path: Path) -> list[dict]:
    try:
        entries = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(f"manifest is not JSON ({error})", path) from None
    if not isinstance(entries, list) or not entries:
        raise InputError('manifest must be a non-empty JSON list of {"name", "image", "label"}', path)
    cases = []
    for n, entry in enumerate(entries):
        if not isinstance(entry, dict) or not {"image", "label"} <= set(entry):
            raise InputError(f'manifest entry {n} needs "image" and "label"', path)
        files = {key: (path.parent / entry[key]) for key in ("image", "label")}
        for key, file in files.items():
            if not file.exists():
                raise InputError(f"manifest entry {n}: {key} file does not exist", file)
        structure = entry.get("structure")
        if structure is not None and not isinstance(structure, str):
            raise InputError(f'manifest entry {n}: "structure" must be a structure name', path)
        cases.append({"name": str(entry.get("name", Path(entry["image"]).stem)), **files,
                      **({"structure": structure} if structure else {})})
    return cases


def read_case(case: dict) -> tuple[Volume, Volume]:
    """(image, label) of a ``find_cases`` entry; an RTSTRUCT label is rasterised on the image grid."""
    from .io import read_image, read_label

    image = read_image(case["image"])
    return image, read_label(case["label"], image, case.get("structure"))


def case_summary(case: dict) -> dict:
    """Per-case means over its boxes: Dice per click, NoC, volume error, HD95, time per step,
    and the margin slices left empty by the box alone."""
    runs = case["runs"]
    steps = min(len(r["steps"]) for r in runs)
    mean = lambda key, s: float(np.mean([r["steps"][s][key] for r in runs]))  # noqa: E731
    last = steps - 1
    margin = [r["margin_slices"] for r in runs]
    return {
        "dice_per_click": [round(mean("dice", s), 4) for s in range(steps)],
        "noc85": float(np.mean([r["noc85"] for r in runs])), "noc90": float(np.mean([r["noc90"] for r in runs])),
        "volume_error_ml_box": round(mean("volume_error_ml", 0), 3),
        "volume_error_pct_box": round(mean("volume_error_pct", 0), 1),
        "volume_error_pct_last": round(mean("volume_error_pct", last), 1),
        "hd95_mm_box": round(mean("hd95_mm", 0), 2), "hd95_mm_last": round(mean("hd95_mm", last), 2),
        "box_ms": round(mean("total_ms", 0), 1),
        "click_ms": round(float(np.mean([s["total_ms"] for r in runs for s in r["steps"][1:]] or [0.0])), 1),
        "margin_slices": sum(m["count"] for m in margin), "margin_slices_empty": sum(m["empty"] for m in margin),
    }


def table_rows(cases: list[dict]) -> list[dict]:
    """One row per case and box: Dice after the box, 1, 3 and the last click, NoC, errors, times."""
    rows = []
    for case in cases:
        for run in case["runs"]:
            dices = [s["dice"] for s in run["steps"]]
            at = lambda n: dices[min(n, len(dices) - 1)]  # noqa: E731
            box = run["steps"][0]
            rows.append({"case": case["name"], "box": run["box"], "dice_box": at(0), "dice_1": at(1), "dice_3": at(3),
                         "dice_last": dices[-1], "noc85": run["noc85"], "noc90": run["noc90"],
                         "vol_err_ml": box["volume_error_ml"], "vol_err_pct": box["volume_error_pct"],
                         "hd95_mm": box["hd95_mm"], "quality": box["quality"],
                         "margin_empty": f"{run['margin_slices']['empty']}/{run['margin_slices']['count']}",
                         "box_ms": box["total_ms"],
                         "click_ms": round(float(np.mean([s["total_ms"] for s in run["steps"][1:]] or [0.0])), 1)})
    return rows


TABLE_COLUMNS = ["case", "box", "dice_box", "dice_1", "dice_3", "dice_last", "noc85", "noc90", "vol_err_ml",
                 "vol_err_pct", "hd95_mm", "quality", "margin_empty", "box_ms", "click_ms"]


def plot_cases(cases: list[dict], path: str | Path) -> Path:
    """A PNG of Dice against clicks, one panel per case, one line per box."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    if not path.parent.is_dir():
        raise InputError("folder for the plot does not exist", path.parent)
    fig, axes = plt.subplots(1, len(cases), figsize=(3.2 * len(cases), 3.0), squeeze=False, sharey=True)
    for ax, case in zip(axes[0], cases):
        for run in case["runs"]:
            ax.plot(range(len(run["steps"])), [s["dice"] for s in run["steps"]], marker=".", label=run["box"])
        ax.set_title(case["name"])
        ax.set_xlabel("clicks")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("Dice")
    axes[0][-1].legend(fontsize=6, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
