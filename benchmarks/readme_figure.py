"""The README picture: LiteMedSAM on the real brain2 MR, box from the label (5 mm margin) and
one simulated click, on the clicked slice.

    .venv/bin/python benchmarks/readme_figure.py Resources/Screenshots/rtinjurysam_brain2.png
"""

import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from rtsam.benchmark_interactive import run_interactive  # noqa: E402
from rtsam.data import example  # noqa: E402
from rtsam.engines.registry import load_engine  # noqa: E402
from rtsam.io import read_image  # noqa: E402


def main(out: str) -> None:
    image = read_image(example("pyradiomics/brain2_image.nrrd"))
    label = read_image(example("pyradiomics/brain2_label.nrrd"))
    report = run_interactive(image, label, load_engine("litemedsam"), clicks=1, keep_masks=True)
    truth = label.array > 0
    k = round(image.lps_to_ijk(report["steps"][1]["click_lps"])[2])  # the clicked slice
    rows, cols = np.nonzero(truth[k])
    view = (slice(max(rows.min() - 40, 0), rows.max() + 40), slice(max(cols.min() - 40, 0), cols.max() + 40))
    lo, hi = (image.lps_to_ijk(corner) for corner in report["box_lps"])
    fig, axes = plt.subplots(1, len(report["steps"]), figsize=(4 * len(report["steps"]), 4.6))
    for ax, step in zip(axes, report["steps"]):
        ax.imshow(image.array[k][view], cmap="gray")
        ax.contour(step["mask"][k][view], levels=[0.5], colors="yellow", linewidths=1.5)
        ax.contour(truth[k][view], levels=[0.5], colors="cyan", linewidths=1, linestyles="--")
        x0, y0 = min(lo[0], hi[0]) - view[1].start, min(lo[1], hi[1]) - view[0].start
        ax.add_patch(plt.Rectangle((x0, y0), abs(hi[0] - lo[0]), abs(hi[1] - lo[1]), fill=False, color="orange"))
        for past in report["steps"][1:report["steps"].index(step) + 1]:
            i, j, click_k = image.lps_to_ijk(past["click_lps"])
            if round(click_k) == k:  # clicks on other slices are not drawn
                ax.plot(i - view[1].start, j - view[0].start, "o", color="lime" if past["positive"] else "red")
        where = "" if step["click_lps"] is None else f", on slice {round(image.lps_to_ijk(step['click_lps'])[2])}"
        ax.set_title(f"{step['step']}{where}: 3D Dice {step['dice']:.2f}")
        ax.axis("off")
    fig.suptitle(f"brain2 MR slice {k}, LiteMedSAM\nbox (orange), click (green: include, red: exclude); result yellow, truth cyan")
    fig.tight_layout()
    fig.savefig(out, dpi=80)


if __name__ == "__main__":
    main(sys.argv[1])
