"""Small-target focus loss (RTInjurySAM): Dice inside a dose/box ROI plus Focal Tversky.

    L = w_dice * Dice(p * roi, y * roi) + w_ft * (1 - TI(p, y)) ** gamma
    TI = (TP + s) / (TP + alpha * FP + beta * FN + s)

Tensors are ``[B, C, D, H, W]``; every sum runs over the spatial axes of one sample and
channel, then the batch mean is taken (MONAI's ``batch=False`` convention). The ROI keeps
the Dice term on the high-dose region, so a small lesion there is not drowned by a large
structure elsewhere; gamma < 1 makes the Focal Tversky term steeper for small residual
errors, which are what a missed small lesion leaves.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


def _as_tensor(x) -> torch.Tensor:
    return x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))


def dilate(mask: torch.Tensor, margin: int) -> torch.Tensor:
    """Binary dilation of ``mask [..., D, H, W]`` by a cube of half-width ``margin`` voxels."""
    if margin <= 0:
        return mask.bool()
    shape = mask.shape
    x = mask.float().reshape(-1, 1, *shape[-3:])
    x = F.max_pool3d(x, kernel_size=2 * margin + 1, stride=1, padding=margin)
    return x.reshape(shape).bool()


def dose_roi(dose, tau: float = 0.8, margin: int = 0) -> torch.Tensor:
    """Voxels with dose >= ``tau`` x Dmax (per sample), dilated by ``margin`` voxels.

    ``dose`` is ``[..., D, H, W]``; a sample without dose (Dmax <= 0) gets an all-true ROI,
    so the loss falls back to the whole crop.
    """
    dose = _as_tensor(dose).float()
    dmax = dose.flatten(-3).amax(dim=-1)[..., None, None, None]
    roi = dilate(dose >= tau * dmax, margin)
    return roi | (dmax <= 0)


def box_roi(shape, lo_kji, hi_kji, margin: int = 0) -> torch.Tensor:
    """A boolean ``[D, H, W]`` ROI: the box ``lo..hi`` (inclusive voxel indices k, j, i) + margin."""
    roi = torch.zeros(tuple(shape), dtype=torch.bool)
    lo = [max(int(np.floor(v)) - margin, 0) for v in lo_kji]
    hi = [min(int(np.ceil(v)) + margin + 1, n) for v, n in zip(hi_kji, shape)]
    roi[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] = True
    return roi


def soft_dice_loss(p: torch.Tensor, y: torch.Tensor, smooth_nr: float = 1e-5, smooth_dr: float = 1e-5) -> torch.Tensor:
    """Per-sample, per-channel ``1 - (2 sum(p y) + s) / (sum p + sum y + s)``, ``[B, C]``."""
    dims = tuple(range(2, p.ndim))
    inter = (p * y).sum(dims)
    return 1.0 - (2.0 * inter + smooth_nr) / (p.sum(dims) + y.sum(dims) + smooth_dr)


def tversky_index(p, y, alpha: float, beta: float, smooth_nr: float = 1e-5, smooth_dr: float = 1e-5):
    """Per-sample, per-channel Tversky index (alpha weighs false positives, beta false negatives)."""
    dims = tuple(range(2, p.ndim))
    tp = (p * y).sum(dims)
    fp = (p * (1 - y)).sum(dims)
    fn = ((1 - p) * y).sum(dims)
    return (tp + smooth_nr) / (tp + alpha * fp + beta * fn + smooth_dr)


@dataclass
class SmallTargetFocusLoss(torch.nn.Module):
    """``dice_weight`` x ROI Dice + ``tversky_weight`` x Focal Tversky; logits in by default."""

    dice_weight: float = 0.7
    tversky_weight: float = 0.3
    alpha: float = 0.5
    beta: float = 0.5
    gamma: float = 0.75
    sigmoid: bool = True
    smooth_nr: float = 1e-5
    smooth_dr: float = 1e-5

    def __post_init__(self):
        super().__init__()

    __hash__ = torch.nn.Module.__hash__

    def forward(self, logits: torch.Tensor, target: torch.Tensor, roi: torch.Tensor | None = None) -> torch.Tensor:
        """``logits``/``target`` ``[B, C, D, H, W]``; ``roi`` broadcastable bool (None: whole crop)."""
        if logits.shape != target.shape:
            raise ValueError(f"prediction {tuple(logits.shape)} and target {tuple(target.shape)} differ in shape")
        p = torch.sigmoid(logits.float()) if self.sigmoid else logits.float()
        y = target.float()
        s = dict(smooth_nr=self.smooth_nr, smooth_dr=self.smooth_dr)
        if roi is None:
            dice = soft_dice_loss(p, y, **s)
        else:
            r = roi.to(p.device).float().expand_as(p)
            dice = soft_dice_loss(p * r, y * r, **s)
        ti = tversky_index(p, y, self.alpha, self.beta, **s)
        # clamp: 1 - TI can be a hair below 0 in float, and x**gamma has no gradient at 0.
        focal = (1.0 - ti).clamp_min(1e-6) ** self.gamma
        return (self.dice_weight * dice + self.tversky_weight * focal).mean()


def dice_score(logits: torch.Tensor, target: torch.Tensor, threshold: float = 0.0) -> torch.Tensor:
    """Hard Dice per sample (``[B]``) of ``logits > threshold``; 1 when both are empty."""
    pred = (logits > threshold).flatten(1).float()
    truth = (target > 0.5).flatten(1).float()
    inter = (pred * truth).sum(1)
    total = pred.sum(1) + truth.sum(1)
    return torch.where(total > 0, 2 * inter / total.clamp_min(1), torch.ones_like(total))
