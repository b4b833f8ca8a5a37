import math

import numpy as np
import pytest
from scipy import ndimage

from conftest import oblique_direction
from rtsam import metrics
from rtsam.errors import GeometryError
from rtsam.volume import Volume


def cube(shape=(10, 12, 14), lo=(2, 3, 4), hi=(6, 8, 10), spacing=(1.0, 1.0, 1.0), **kw) -> Volume:
    array = np.zeros(shape, np.uint8)
    array[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] = 1
    return Volume(array, spacing, **kw)


@pytest.fixture(scope="module")
def lung_pair(data):
    """The real lung2 tumour mask (crop) and a perturbed copy: dilated, shifted, one blob removed."""
    from rtsam.io import read_image

    label = read_image(data / "pyradiomics" / "lung2_label.nrrd")
    truth = label.array[12:29, 325:405, 310:412] > 0
    pred = np.roll(ndimage.binary_dilation(truth, iterations=2), 3, axis=2)
    pred[:, :30] = False
    spacing = label.spacing
    return Volume(pred.astype(np.uint8), spacing), Volume(truth.astype(np.uint8), spacing)


def test_overlap_metrics_of_two_cubes():
    a, b = cube(), cube(lo=(2, 3, 7), hi=(6, 8, 13))  # 4x5x6 and 4x5x6 overlapping 4x5x3
    assert metrics.dice(a, b) == pytest.approx(2 * 60 / 240)
    assert metrics.iou(a, b) == pytest.approx(60 / 180)
    assert metrics.sensitivity(a, b) == pytest.approx(0.5)
    assert metrics.precision(a, b) == pytest.approx(0.5)
    big = cube(spacing=(2.0, 0.5, 3.0))
    assert metrics.volume_ml(big) == pytest.approx(120 * 3.0 / 1000)


def test_surface_distances_of_shifted_cubes_are_in_mm():
    a = cube(shape=(20, 20, 20), lo=(5, 5, 5), hi=(12, 12, 12), spacing=(0.5, 1.0, 2.0))
    b = cube(shape=(20, 20, 20), lo=(5, 5, 8), hi=(12, 12, 15), spacing=(0.5, 1.0, 2.0))
    # shifted 3 voxels along i (spacing 0.5 mm): faces normal to i move 1.5 mm
    assert metrics.hd95_mm(a, b) == pytest.approx(1.5)
    assert 0 < metrics.assd_mm(a, b) < 1.5


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_hd95_and_assd_match_monai_on_real_masks(lung_pair):
    import torch
    from monai.metrics import compute_average_surface_distance, compute_hausdorff_distance

    pred, truth = lung_pair
    to_tensor = lambda v: torch.from_numpy(v.array[None, None].astype(np.float32))  # noqa: E731
    spacing = list(pred.spacing[::-1])  # array axes (k, j, i)
    hd95 = compute_hausdorff_distance(to_tensor(pred), to_tensor(truth), include_background=True,
                                      percentile=95, spacing=spacing).item()
    assd = compute_average_surface_distance(to_tensor(pred), to_tensor(truth), include_background=True,
                                            symmetric=True, spacing=spacing).item()
    assert hd95 > 1.0
    assert metrics.hd95_mm(pred, truth) == pytest.approx(hd95, rel=1e-4)
    assert metrics.assd_mm(pred, truth) == pytest.approx(assd, rel=1e-4)


def test_distances_do_not_depend_on_the_direction(lung_pair):
    pred, truth = lung_pair
    turned = [Volume(v.array, v.spacing, (10.0, -5.0, 3.0), oblique_direction(30)) for v in (pred, truth)]
    assert metrics.hd95_mm(*turned) == pytest.approx(metrics.hd95_mm(pred, truth))
    assert metrics.assd_mm(*turned) == pytest.approx(metrics.assd_mm(pred, truth))


def test_evaluate_keys_and_volume_error(lung_pair):
    pred, truth = lung_pair
    result = metrics.evaluate(pred, truth)
    assert set(result) == {"dice", "iou", "hd95_mm", "assd_mm", "volume_pred_ml", "volume_truth_ml",
                           "volume_error_ml", "sensitivity", "precision"}
    assert result["volume_error_ml"] == pytest.approx(result["volume_pred_ml"] - result["volume_truth_ml"])
    assert result["dice"] == pytest.approx(metrics.dice(pred, truth))
    assert 0 < result["dice"] < 1 and result["iou"] < result["dice"]


def test_empty_masks_have_defined_values():
    empty = cube(hi=(2, 3, 4))
    both = metrics.evaluate(empty, empty)
    assert (both["dice"], both["iou"], both["hd95_mm"], both["assd_mm"]) == (1.0, 1.0, 0.0, 0.0)
    missed = metrics.evaluate(empty, cube())
    assert missed["dice"] == 0.0 and math.isinf(missed["hd95_mm"]) and math.isinf(missed["assd_mm"])
    assert missed["sensitivity"] == 0.0 and math.isnan(missed["precision"])
    spurious = metrics.evaluate(cube(), empty)
    assert spurious["dice"] == 0.0 and math.isnan(spurious["sensitivity"]) and spurious["precision"] == 0.0


def test_masks_on_different_grids_are_a_geometry_error():
    a = cube(metadata={"path": "pred.nrrd"})
    with pytest.raises(GeometryError, match="pred.nrrd: .*different grids"):
        metrics.dice(a, cube(spacing=(1.0, 1.0, 2.0)))
    with pytest.raises(GeometryError, match="different grids"):
        metrics.evaluate(a, cube(shape=(10, 12, 15)))
