"""The interactive protocol (every box of ``box_variants``, 3 clicks) with whatever ``rtsam`` is
first on the path: run it against a checkout of the previous engine for the before/after table.

    PYTHONPATH=/path/to/old/checkout:benchmarks python benchmarks/interactive_before.py OUT.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

from loco_cases import CASES, EMBEDDING_CACHE, all_cases, cache_embeddings_on_disk
from rtsam.benchmark_interactive import box_from_label, run_interactive
from rtsam.engines.registry import load_engine


def boxes(label) -> dict:
    """The margins and the seeded jittered box of the new protocol (computed here so an old
    checkout without ``box_variants`` gets the same boxes)."""
    out = {f"margin {m:g} mm": box_from_label(label, m) for m in (0.0, 3.0, 5.0, 10.0)}
    out["jitter 3 mm (seed 0)"] = box_from_label(label, 5.0) + np.random.default_rng(0).uniform(-3, 3, size=(2, 3))
    return out


def main() -> None:
    torch.set_num_threads(1)
    cache_embeddings_on_disk(EMBEDDING_CACHE)
    engine = load_engine("litemedsam")
    out = {}
    for name, case in all_cases().items():
        if name not in CASES:
            continue
        out[name] = {}
        for box_name, box in boxes(case["label"]).items():
            run = run_interactive(case["image"], case["label"], engine, clicks=3, box_lps=box)
            out[name][box_name] = [s["dice"] for s in run["steps"]]
            print(name, box_name, out[name][box_name], flush=True)
        Path(sys.argv[1]).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
