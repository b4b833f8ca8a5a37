import numpy as np
import pytest
import torch
from monai.losses import DiceLoss, TverskyLoss

from rtsam.train.losses import SmallTargetFocusLoss, box_roi, dice_score, dose_roi


@pytest.fixture
def pair():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 1, 12, 10, 8, generator=g)
    target = (torch.rand(3, 1, 12, 10, 8, generator=g) > 0.7).float()
    return logits, target


def test_dice_term_equals_monai_dice_on_whole_volume(pair):
    logits, target = pair
    ours = SmallTargetFocusLoss(dice_weight=1.0, tversky_weight=0.0)(logits, target)
    monai = DiceLoss(sigmoid=True)(logits, target)
    assert torch.allclose(ours, monai, atol=1e-6)


def test_tversky_term_equals_monai_tversky_with_gamma_one(pair):
    logits, target = pair
    for alpha, beta in [(0.5, 0.5), (0.3, 0.7)]:
        ours = SmallTargetFocusLoss(dice_weight=0.0, tversky_weight=1.0, alpha=alpha, beta=beta, gamma=1.0)(logits, target)
        monai = TverskyLoss(sigmoid=True, alpha=alpha, beta=beta)(logits, target)
        assert torch.allclose(ours, monai, atol=1e-6)


def test_default_loss_is_weighted_monai_sum_when_definitions_coincide(pair):
    logits, target = pair
    ours = SmallTargetFocusLoss(gamma=1.0)(logits, target, roi=torch.ones_like(target, dtype=torch.bool))
    expected = 0.7 * DiceLoss(sigmoid=True)(logits, target) + 0.3 * TverskyLoss(sigmoid=True, alpha=0.5, beta=0.5)(logits, target)
    assert torch.allclose(ours, expected, atol=1e-6)


def test_roi_dice_equals_monai_dice_on_the_masked_tensors(pair):
    logits, target = pair
    roi = torch.zeros_like(target, dtype=torch.bool)
    roi[..., 2:9, 3:8, 1:6] = True
    ours = SmallTargetFocusLoss(dice_weight=1.0, tversky_weight=0.0)(logits, target, roi)
    monai = DiceLoss()(torch.sigmoid(logits) * roi, target * roi)
    assert torch.allclose(ours, monai, atol=1e-6)


@pytest.mark.parametrize("roi_kind", ["none", "empty-dose"])
def test_gradients_finite_on_empty_masks(roi_kind):
    logits = torch.full((2, 1, 8, 8, 8), -8.0, requires_grad=True)  # confidently empty prediction
    target = torch.zeros(2, 1, 8, 8, 8)
    roi = None if roi_kind == "none" else dose_roi(torch.zeros(2, 1, 8, 8, 8))
    loss = SmallTargetFocusLoss()(logits, target, roi)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()
    assert (logits.grad >= 0).all()  # never pushes an empty prediction up
    # an empty truth with a false-positive blob: finite, and the gradient pushes the blob down
    logits2 = torch.full((1, 1, 8, 8, 8), -8.0)
    logits2[..., 2:5, 2:5, 2:5] = 4.0
    logits2.requires_grad_(True)
    loss2 = SmallTargetFocusLoss()(logits2, torch.zeros(1, 1, 8, 8, 8))
    loss2.backward()
    assert loss2.item() > 0.5 and torch.isfinite(logits2.grad).all()
    assert logits2.grad[..., 3, 3, 3].item() > 0


def _two_lesions():
    """A large lesion (10^3 voxels) and a small one (2^3) in one volume, high dose on the small one."""
    target = torch.zeros(1, 1, 32, 32, 32)
    target[..., 2:12, 2:12, 2:12] = 1
    target[..., 24:26, 24:26, 24:26] = 1
    dose = torch.zeros(1, 1, 32, 32, 32)
    dose[..., 22:28, 22:28, 22:28] = 60.0
    dose[..., :16, :16, :16] = 20.0
    return target, dose_roi(dose, tau=0.8, margin=1)


def test_missed_small_lesion_weighs_more_than_with_plain_dice():
    target, roi = _two_lesions()
    # the prediction finds the large lesion and misses the small one
    logits = torch.where(target.bool(), 10.0, -10.0)
    logits[..., 24:26, 24:26, 24:26] = -10.0
    logits.requires_grad_(True)
    plain = DiceLoss(sigmoid=True)(logits, target)
    focus = SmallTargetFocusLoss()(logits, target, roi)
    # plain Dice barely notices (8 of 1008 voxels), the focus loss calls it a big error
    assert plain.item() < 0.005
    assert focus.item() > 0.5
    # per missed voxel, the focus loss pushes the small lesion far harder than a large-lesion miss
    logits_big_miss = torch.where(target.bool(), 10.0, -10.0)
    logits_big_miss[..., 2:4, 2:4, 2:4] = -10.0  # 8 voxels missed in the large lesion instead
    logits_big_miss.requires_grad_(True)
    SmallTargetFocusLoss()(logits_big_miss, target, roi).backward()
    focus.backward()
    small_push = -logits.grad[..., 24:26, 24:26, 24:26].mean()
    large_push = -logits_big_miss.grad[..., 2:4, 2:4, 2:4].mean()
    assert small_push > 0 and large_push > 0
    assert small_push > 10 * large_push


def test_focal_exponent_amplifies_small_residual_errors():
    target, _ = _two_lesions()
    logits = torch.where(target.bool(), 10.0, -10.0)
    logits[..., 24:26, 24:26, 24:26] = -10.0
    plain = TverskyLoss(sigmoid=True)(logits, target).item()
    focal = SmallTargetFocusLoss(dice_weight=0.0, tversky_weight=1.0)(logits, target).item()
    assert focal == pytest.approx(plain**0.75, rel=1e-3)
    assert focal > 3 * plain


def test_dose_roi_threshold_margin_and_no_dose():
    dose = np.zeros((10, 10, 10))
    dose[5, 5, 5] = 10.0
    dose[1, 1, 1] = 7.9
    roi = dose_roi(dose, tau=0.8, margin=1)
    assert roi.sum().item() == 27 and roi[4:7, 4:7, 4:7].all() and not roi[1, 1, 1]
    assert dose_roi(np.zeros((4, 4, 4))).all()
    batch = torch.zeros(2, 1, 6, 6, 6)
    batch[0, 0, 0, 0, 0] = 1.0
    batch[1, 0, 5, 5, 5] = 100.0
    roi = dose_roi(batch)
    assert roi[0, 0, 0, 0, 0] and roi[1, 0, 5, 5, 5] and roi.sum().item() == 2


def test_box_roi_clips_to_volume():
    roi = box_roi((8, 8, 8), (1, 2, 3), (2, 2, 7), margin=1)
    assert roi.shape == (8, 8, 8)
    assert roi.sum().item() == 4 * 3 * 6


def test_dice_score_hard():
    target = torch.zeros(2, 1, 4, 4, 4)
    target[0, 0, :2] = 1
    logits = torch.full_like(target, -1.0)
    logits[0, 0, :1] = 1.0
    assert dice_score(logits, target).tolist() == pytest.approx([2 * 16 / (16 + 32), 1.0])
