"""Training crops: cases resampled to the model's isotropic spacing, cropped around the ROI.

Each case is resampled once (image linear, label nearest, dose linear onto the image's
resampled grid, keeping the image's direction), z-scored, and reduced to the region around
the lesion. Items are ``config.img_size``^3 crops centred on the prompt box (dose box when a
dose exists, else the label's box) with random jitter and MONAI augmentation (flips, small
rotations, intensity scale/shift) for training; validation crops are centred, unaugmented.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from ..volume import Volume
from .losses import dose_roi
from .manifest import LoadedCase


@dataclass
class PreparedCase:
    image: np.ndarray  # float32 [k, j, i], z-scored, isotropic spacing
    label: np.ndarray  # uint8
    roi: np.ndarray  # uint8: dose >= tau x Dmax (dilated), or the label's box + margin
    center: np.ndarray  # crop centre (k, j, i): centre of the prompt box
    task: str | None
    patient: str | None
    row: int
    has_dose: bool


def resample_isotropic(volume: Volume, spacing: float, nearest: bool = False, reference: Volume | None = None) -> Volume:
    """``volume`` on an isotropic ``spacing`` grid with its own direction (or on ``reference``'s grid)."""
    import SimpleITK as sitk

    image = volume.to_sitk()
    if image.GetPixelID() not in (sitk.sitkFloat32, sitk.sitkUInt8):
        image = sitk.Cast(image, sitk.sitkFloat32)
    if reference is None:
        size = [max(int(round(n * s / spacing)), 1) for n, s in zip(volume.size_ijk, volume.spacing)]
        ref = sitk.Image(size, sitk.sitkUInt8)
        ref.SetSpacing((spacing,) * 3)
        ref.SetOrigin(volume.origin)
        ref.SetDirection(tuple(volume.direction.ravel()))
    else:
        ref = reference.to_sitk()
    interp = sitk.sitkNearestNeighbor if nearest else sitk.sitkLinear
    out = sitk.Resample(image, ref, sitk.Transform(), interp, 0.0, image.GetPixelID())
    return Volume.from_sitk(out)


def prepare_case(loaded: LoadedCase, spacing: float, size: int, tau: float = 0.8, margin_mm: float = 5.0) -> PreparedCase:
    """Resample, normalise and keep the region within one crop of the ROI."""
    image = resample_isotropic(loaded.image, spacing)
    label = resample_isotropic(loaded.label, spacing, nearest=True, reference=image).array.astype(np.uint8)
    if not label.any():  # a lesion thinner than one resampled voxel: keep it on the nearest voxel
        label = _nearest_voxels(loaded, image)
    margin = max(int(round(margin_mm / spacing)), 0)
    if loaded.dose is not None:
        dose = resample_isotropic(loaded.dose, spacing, reference=image).array
        roi = dose_roi(dose, tau, margin).numpy().astype(np.uint8)
        roi = roi if roi.any() and dose.max() > 0 else _box_mask(label, margin)
    else:
        roi = _box_mask(label, margin)
    lo, hi = _bbox(roi)
    center = (lo + hi) / 2.0
    array = image.array.astype(np.float32)
    array = (array - array.mean()) / max(float(array.std()), 1e-6)
    # keep one crop's reach (plus jitter room) around the centre: memory for many cases
    reach = size
    a = np.maximum(np.floor(center - reach).astype(int), 0)
    b = np.minimum(np.ceil(center + reach).astype(int) + 1, array.shape)
    sl = tuple(slice(x, y) for x, y in zip(a, b))
    return PreparedCase(array[sl], label[sl], roi[sl], center - a, loaded.case.task, loaded.case.patient,
                        loaded.case.row, loaded.dose is not None)


def _nearest_voxels(loaded: LoadedCase, image: Volume) -> np.ndarray:
    label = np.zeros(image.array.shape, np.uint8)
    kji = np.argwhere(loaded.label.array > 0)
    ijk = np.rint(image.lps_to_ijk(loaded.label.ijk_to_lps(kji[:, ::-1].astype(float)))).astype(int)
    ijk = np.clip(ijk, 0, np.asarray(image.size_ijk) - 1)
    label[ijk[:, 2], ijk[:, 1], ijk[:, 0]] = 1
    return label


def _bbox(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    idx = np.argwhere(mask)
    return idx.min(axis=0), idx.max(axis=0)


def _box_mask(label: np.ndarray, margin: int) -> np.ndarray:
    lo, hi = _bbox(label)
    lo, hi = np.maximum(lo - margin, 0), np.minimum(hi + margin + 1, label.shape)
    roi = np.zeros_like(label, dtype=np.uint8)
    roi[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] = 1
    return roi


def crop(array: np.ndarray, center: np.ndarray, size: int, fill: float = 0.0) -> np.ndarray:
    """A ``size``^3 crop centred on ``center`` (k, j, i), padded with ``fill`` outside."""
    start = np.floor(np.asarray(center) - size / 2.0 + 0.5).astype(int)
    out = np.full((size,) * 3, fill, dtype=array.dtype)
    src_lo = np.maximum(start, 0)
    src_hi = np.minimum(start + size, array.shape)
    if np.any(src_hi <= src_lo):
        return out
    dst_lo = src_lo - start
    dst = tuple(slice(a, a + (h - l)) for a, l, h in zip(dst_lo, src_lo, src_hi))
    out[dst] = array[tuple(slice(l, h) for l, h in zip(src_lo, src_hi))]
    return out


def augmentation(rotate_rad: float = 0.15, seed: int | None = None):
    """MONAI dictionary transforms on ``image``/``label``/``roi`` channel-first crops."""
    from monai.transforms import Compose, RandFlipd, RandRotated, RandScaleIntensityd, RandShiftIntensityd

    keys = ["image", "label", "roi"]
    t = Compose([
        *[RandFlipd(keys, prob=0.5, spatial_axis=axis) for axis in range(3)],
        RandRotated(keys, range_x=rotate_rad, range_y=rotate_rad, range_z=rotate_rad, prob=0.5,
                    mode=("bilinear", "nearest", "nearest"), padding_mode="border"),
        RandScaleIntensityd("image", factors=0.1, prob=0.5),
        RandShiftIntensityd("image", offsets=0.1, prob=0.5),
    ])
    if seed is not None:
        t.set_random_state(seed=seed)
    return t


class CropDataset(Dataset):
    """``img_size``^3 training (jittered, augmented unless ``augment=False``) or validation (centred) crops."""

    def __init__(self, cases: list[PreparedCase], size: int, train: bool, jitter: int | None = None,
                 repeats: int = 1, seed: int = 0, box_margin: int = 2, augment: bool = True):
        self.cases, self.size, self.train, self.repeats = cases, size, train, repeats if train else 1
        self.jitter = size // 8 if jitter is None else jitter
        self.box_margin = box_margin
        self.rng = np.random.default_rng(seed)
        self.transform = augmentation(seed=seed) if train and augment else None

    def reseed(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        if self.transform is not None:
            self.transform.set_random_state(seed=seed % 2**32)

    def __len__(self) -> int:
        return len(self.cases) * self.repeats

    def __getitem__(self, index: int) -> dict:
        case = self.cases[index % len(self.cases)]
        center = case.center.copy()
        if self.train and self.jitter:
            center = center + self.rng.integers(-self.jitter, self.jitter + 1, size=3)
        fill = float(case.image.min())
        item = {
            "image": crop(case.image, center, self.size, fill)[None],
            "label": crop(case.label, center, self.size)[None].astype(np.float32),
            "roi": crop(case.roi, center, self.size)[None].astype(np.float32),
        }
        if self.transform is not None:
            item = self.transform(item)
        item = {k: torch.as_tensor(np.asarray(v), dtype=torch.float32) for k, v in item.items()}
        item["label"] = (item["label"] > 0.5).float()
        item["roi"] = item["roi"] > 0.5
        item["box"] = self._box(item, case)
        item.update(task=case.task or "", patient=case.patient or "", row=case.row)
        return item

    def _box(self, item: dict, case: PreparedCase) -> torch.Tensor:
        """Prompt box ``[2, 3]`` (min, max corner; k, j, i crop voxels): the dose ROI's, else label + margin."""
        source = item["roi"][0] if case.has_dose and item["roi"].any() else item["label"][0] > 0
        if not source.any():
            return torch.tensor([[0.0] * 3, [self.size - 1.0] * 3])
        idx = source.nonzero().float()
        margin = 0 if case.has_dose else self.box_margin
        lo = (idx.min(0).values - margin).clamp(0, self.size - 1)
        hi = (idx.max(0).values + margin).clamp(0, self.size - 1)
        return torch.stack([lo, hi])
