"""The tuning cases: the four labelled lesions of ../shared/data/pyradiomics and sub-cases cut from them.

Sub-cases stay in the group of the lesion they come from, so leave-one-case-out never tunes on
any part of the case it scores:
- ``lung2_top`` / ``lung2_bottom``: lung2's first / last 3 lesion slices only, the image cut just
  past them (a small, 3-slice lesion end with loose z margins on the open side: a proxy for a
  small nodule);
- ``brain1_c1`` / ``brain1_c2``: each 3D connected component of brain1's label alone.
Slice embeddings are cached on disk (keyed by the model's input tensor), so reruns only decode.
"""

from __future__ import annotations

import argparse
import hashlib
import os
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from rtsam.engines.litemedsam import LiteMedSAMContext
from rtsam.io import read_image
from rtsam.volume import Volume

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "pyradiomics"
CASES = ("lung2", "brain1", "brain2", "breast1")
EMBEDDING_CACHE = Path("/tmp/rtsam_embeddings")


def slab(volume: Volume, k0: int, k1: int) -> Volume:
    """Slices k0..k1-1 of ``volume`` with the right origin."""
    return Volume(volume.array[k0:k1], volume.spacing, tuple(volume.ijk_to_lps([0, 0, k0])), volume.direction,
                  metadata=dict(volume.metadata))


def load(name: str, data: Path = DATA) -> tuple[Volume, Volume]:
    return read_image(data / f"{name}_image.nrrd"), read_image(data / f"{name}_label.nrrd")


def sub_cases(name: str, image: Volume, label: Volume) -> dict[str, tuple[Volume, Volume]]:
    """{sub-case name: (image, label)} cut from one lesion."""
    truth = label.array > 0
    out = {}
    ks = np.flatnonzero(truth.any(axis=(1, 2)))
    if name == "lung2":
        top, bottom = ks[:3], ks[-3:]
        keep = np.zeros_like(truth)
        keep[top] = truth[top]
        out["lung2_top"] = (slab(image, 0, top[-1] + 1), slab(label.with_array(keep.astype(np.uint8)), 0, top[-1] + 1))
        keep = np.zeros_like(truth)
        keep[bottom] = truth[bottom]
        out["lung2_bottom"] = (slab(image, bottom[0], truth.shape[0]),
                               slab(label.with_array(keep.astype(np.uint8)), bottom[0], truth.shape[0]))
    components, count = ndimage.label(truth)
    if count > 1:
        for c in range(1, count + 1):
            out[f"{name}_c{c}"] = (image, label.with_array((components == c).astype(np.uint8)))
    return out


def all_cases(data: Path = DATA) -> dict[str, dict]:
    """{case: {"group", "image", "label"}}: the four lesions and their sub-cases."""
    cases = {}
    for name in CASES:
        image, label = load(name, data)
        cases[name] = {"group": name, "image": image, "label": label}
        for sub, (im, lb) in sub_cases(name, image, label).items():
            cases[sub] = {"group": name, "image": im, "label": lb}
    return cases


def check_cases() -> dict[str, dict]:
    """{case: {"group", "image", "label", "boxes"}}: cases no rule is tuned on. ``demo_4dct``: the
    reference (end-inhale, blurred) phase of ``rtsam demo``'s 4-phase 4DCT of a lung2 crop, with
    the demo's own box (rtsam.demo.parts.lung_itv) besides the usual ones."""
    from rtsam.demo import parts
    from rtsam.itv.bench import load_case
    from rtsam.itv.generator import make_4dct
    from rtsam.itv.propagate import box_from_mask

    image, lesion = load_case(parts.ITV_CASE, parts.ITV_CROP_MM)
    generated = make_4dct(image, lesion, phases=4)
    label = generated.phase_masks[0]
    return {"demo_4dct": {"group": "demo_4dct", "image": generated.phases[0], "label": label,
                          "boxes": {"demo": box_from_mask(label, parts.BOX_MARGIN_MM)}}}


def nodule_check_cases(count: int = 6, seed: int = 1) -> dict[str, dict]:
    """{"nodule<n>": {"group", "image", "label"}}: ``rtsam benchmark nodules``' small nodules of lung2's
    tumour tissue in lung2's aerated lung; no rule is tuned on them (they share lung2's image, so they
    check rules, they do not stand for another patient)."""
    from rtsam.nodules import nodule_cases

    image, label = load("lung2")
    return {f"nodule{n}": {"group": "nodules", "image": nodule.image, "label": nodule.label}
            for n, nodule in enumerate(nodule_cases(image, label, count, seed), start=1)}


def phantom_cases(manifest: Path) -> dict[str, dict]:
    """{"pat<n>": {"group", "image", "label"}}: the real lung tumours of benchmarks/lung_phantom.py's manifest,
    each its own group (another patient)."""
    from rtsam.benchmark_cases import find_cases, read_case

    cases = {}
    for case in find_cases(manifest):
        image, label = read_case(case)
        cases[case["name"]] = {"group": case["name"], "image": image, "label": label}
    return cases


def cache_embeddings_on_disk(folder: Path) -> None:
    """Make every LiteMedSAM context read/write slice embeddings under ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    original = LiteMedSAMContext.embedding

    def embedding(self, k, timings):
        digest = hashlib.sha1(self.letterbox.image_tensor(self.image.array[k], self.window).numpy().tobytes())
        path = folder / f"{digest.hexdigest()}.pt"
        if path.exists():
            return self._cache.get(self.embedding_key(k), lambda: torch.load(path))
        value = original(self, k, timings)
        partial = path.with_suffix(f".{os.getpid()}.part")  # concurrent runs never read a half-written file
        torch.save(value, partial)
        partial.replace(path)
        return value

    LiteMedSAMContext.embedding = embedding


def parsed_with_cache(parser: argparse.ArgumentParser) -> argparse.Namespace:
    """``parser``'s arguments and ``--cache``; then one torch thread, and slice embeddings cached in that folder."""
    parser.add_argument("--cache", type=Path, default=EMBEDDING_CACHE, help="folder of cached slice embeddings")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cache_embeddings_on_disk(args.cache)
    return args
