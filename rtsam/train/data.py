"""From a manifest to training/validation loaders: validate, split by case, prepare, load."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler

from ..errors import InputError
from .dataset import CropDataset, PreparedCase, prepare_case
from .manifest import LoadedCase, Manifest, validate


@dataclass
class TrainData:
    manifest: Manifest
    train_cases: list[LoadedCase]
    val_cases: list[LoadedCase]
    train: CropDataset
    val: CropDataset
    val_on_train: bool  # one case only: validation crops come from the training case


def split_cases(cases: list, val_fraction: float, seed: int) -> tuple[list, list, bool]:
    """Split by case (never crops of one case on both sides), reproducibly from ``seed``."""
    if not 0 <= val_fraction < 1:
        raise InputError(f"--val-fraction must be in [0, 1), got {val_fraction}")
    if len(cases) == 1 or val_fraction == 0:
        return list(cases), list(cases), True
    order = np.random.default_rng(seed).permutation(len(cases))
    n_val = min(max(int(round(val_fraction * len(cases))), 1), len(cases) - 1)
    val = sorted(order[:n_val])
    return [c for i, c in enumerate(cases) if i not in val], [cases[i] for i in val], False


def load_data(options, config, known_tasks: list[str] | None, info, log) -> TrainData:
    """Validate the manifest (reporting skipped rows), split and prepare crops."""
    manifest = validate(options.manifest, options.task, known_tasks, options.skip_bad)
    if manifest.skipped:
        total = len(manifest.skipped) + len(manifest.cases)
        log(f"skipped {len(manifest.skipped)} of {total} manifest rows: " + "; ".join(manifest.skipped))
    train_cases, val_cases, val_on_train = split_cases(manifest.cases, options.val_fraction, options.seed)
    if val_on_train:
        log("validation uses the training cases (one case, or --val-fraction 0): its Dice is not a held-out score")

    def prepare(cases: list[LoadedCase]) -> list[PreparedCase]:
        return [prepare_case(c, config.spacing_mm, config.img_size) for c in cases]

    train_prepared = prepare(train_cases)
    val_prepared = train_prepared if val_on_train else prepare(val_cases)
    size = config.img_size
    train = CropDataset(train_prepared, size, train=True, repeats=options.crops_per_case, seed=options.seed + info.rank,
                        augment=options.augment)
    val = CropDataset(val_prepared, size, train=False)
    log(f"data: {len(train_cases)} training and {len(val_cases)} validation cases, {size}^3 crops at "
        f"{config.spacing_mm} mm, manifest sha256 {manifest.sha256[:12]}")
    return TrainData(manifest, train_cases, val_cases, train, val, val_on_train)


def build_loaders(data: TrainData, options, info) -> tuple[DataLoader, DataLoader]:
    """Shuffled training loader (sharded per process under DDP) and a sharded validation loader."""
    def sampler(dataset, shuffle):
        if not info.distributed:
            return None
        return DistributedSampler(dataset, info.world_size, info.rank, shuffle=shuffle, seed=options.seed)

    train_sampler, val_sampler = sampler(data.train, True), sampler(data.val, False)
    train = DataLoader(data.train, batch_size=options.batch_size, sampler=train_sampler,
                       shuffle=train_sampler is None, drop_last=False)
    val = DataLoader(data.val, batch_size=options.batch_size, sampler=val_sampler, shuffle=False)
    return train, val
