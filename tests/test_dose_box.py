import itertools

import numpy as np
import pytest

from rtsam.errors import GeometryError, InputError
from rtsam.prompts.dose_box import box_iou, dose_box, shift_sensitivity
from rtsam.volume import Volume
from conftest import oblique_direction


def blob_dose(direction=np.eye(3), spacing=(2.0, 2.5, 3.0), origin=(-40.0, 30.0, -20.0), centres=((12, 10, 8),)):
    """Sum of Gaussian blobs on a 24x20x16 (i, j, k) grid, peak ~10 Gy."""
    k, j, i = np.mgrid[0:16, 0:20, 0:24]
    array = sum(10 * np.exp(-((i - ci) ** 2 + (j - cj) ** 2 + (k - ck) ** 2) / 8.0) for ci, cj, ck in centres)
    return Volume(array.astype(np.float32), spacing, origin, direction, metadata={"path": "dose.dcm"})


def brute_force_box(dose: Volume, threshold: float) -> np.ndarray:
    """Min/max over the 8 corners of every thresholded voxel."""
    kji = np.argwhere(dose.array >= threshold * dose.array.max())
    offsets = np.array(list(itertools.product((-0.5, 0.5), repeat=3)))
    corners = dose.ijk_to_lps((kji[:, None, ::-1] + offsets[None]).reshape(-1, 3))
    return np.stack([corners.min(axis=0), corners.max(axis=0)])


@pytest.mark.parametrize("direction", [np.eye(3), oblique_direction(25)])
def test_box_is_the_physical_extent_of_the_thresholded_voxels(direction):
    dose = blob_dose(direction)
    box = dose_box(dose, threshold=0.5)
    np.testing.assert_allclose(box.box_lps, brute_force_box(dose, 0.5), atol=1e-9)
    assert box.voxels == int(np.sum(dose.array >= 0.5 * dose.array.max()))
    assert box.dmax_gy == pytest.approx(float(dose.array.max()))
    assert box.threshold_gy == pytest.approx(0.5 * box.dmax_gy)


def test_box_ijk_on_the_dose_grid_is_the_voxel_index_range():
    dose = blob_dose()
    box = dose_box(dose, threshold=0.8)
    kji = np.argwhere(dose.array >= 0.8 * dose.array.max())
    np.testing.assert_array_equal(box.box_ijk, [kji.min(axis=0)[::-1], kji.max(axis=0)[::-1]])
    d = box.to_dict()
    assert set(d) >= {"box_lps_mm", "box_ijk", "dmax_gy", "threshold_gy", "voxels"}


def test_margin_and_minimum_size():
    dose = blob_dose()
    plain = dose_box(dose, threshold=0.9, clip=False)
    grown = dose_box(dose, threshold=0.9, margin_mm=4.0, clip=False)
    np.testing.assert_allclose(grown.box_lps, plain.box_lps + [[-4], [4]])
    big = dose_box(dose, threshold=0.9, min_size_mm=30.0, clip=False)
    np.testing.assert_allclose(big.size_mm, np.maximum(plain.size_mm, 30.0))
    np.testing.assert_allclose(big.box_lps.mean(axis=0), plain.box_lps.mean(axis=0))


def test_nearest_component_keeps_one_region():
    dose = blob_dose(centres=((5, 5, 4), (19, 15, 12)))
    both = dose_box(dose, threshold=0.5)
    assert both.components == 2
    near = dose.ijk_to_lps([19, 15, 12]) + 1.0
    one = dose_box(dose, threshold=0.5, component="nearest", near_lps=near)
    assert one.voxels == both.voxels // 2
    assert np.all(one.box_ijk[0] >= [15, 11, 8])
    with pytest.raises(InputError, match="near_lps"):
        dose_box(dose, component="nearest")


def test_box_on_a_reference_grid_with_clipping():
    dose = blob_dose(direction=oblique_direction(15))
    box = dose_box(dose, threshold=0.5, margin_mm=3, clip=False)
    ref = Volume(np.zeros((40, 50, 60)), (1.0, 1.2, 1.5), tuple(box.box_lps[0] - 10), metadata={"path": "ct.nrrd"})
    on_ref = dose_box(dose, threshold=0.5, margin_mm=3, reference=ref)
    assert on_ref.grid == "reference"
    # the index range holds exactly the reference voxels whose extent meets the box
    lo = np.ceil(ref.lps_to_ijk(box.box_lps[0]) - 0.5).astype(int)
    hi = np.floor(ref.lps_to_ijk(box.box_lps[1]) + 0.5).astype(int)
    np.testing.assert_array_equal(on_ref.box_ijk, [lo, hi])
    # a small reference clips the box and its indices
    small = Volume(np.zeros((5, 6, 7)), (1.0, 1.0, 1.0), tuple(box.box_lps.mean(axis=0)))
    clipped = dose_box(dose, threshold=0.5, reference=small)
    np.testing.assert_array_equal(clipped.box_ijk, [[0, 0, 0], [6, 5, 4]])
    assert np.all(clipped.box_lps[0] >= np.asarray(small.origin) - 0.5 - 1e-9)


def test_box_outside_the_reference_is_an_error():
    dose = blob_dose()
    far = Volume(np.zeros((4, 4, 4)), origin=(500.0, 500.0, 500.0), metadata={"path": "far.nrrd"})
    with pytest.raises(GeometryError, match="far.nrrd.*does not overlap"):
        dose_box(dose, reference=far)
    with pytest.raises(GeometryError, match="does not overlap"):
        dose_box(dose, reference=far, clip=False)


@pytest.mark.parametrize("bad, message", [(0.0, "zero everywhere"), (np.nan, "NaN")])
def test_unusable_dose_is_an_input_error(bad, message):
    dose = blob_dose()
    dose.array[:] = 0.0
    dose.array[1, 1, 1] = bad
    with pytest.raises(InputError, match=f"dose.dcm: .*{message}"):
        dose_box(dose)


def test_iou_and_shift_sensitivity_match_translated_boxes():
    assert box_iou([[0, 0, 0], [2, 2, 2]], [[1, 0, 0], [3, 2, 2]]) == pytest.approx(4 / 12)
    assert box_iou([[0, 0, 0], [1, 1, 1]], [[5, 5, 5], [6, 6, 6]]) == 0.0
    dose = blob_dose(direction=oblique_direction(10))
    size = dose_box(dose, threshold=0.6).size_mm
    rows = shift_sensitivity(dose, shifts_mm=(1, 3), threshold=0.6)
    assert len(rows) == 3 * 2 * 2
    for row in rows:
        extent = size["LPS".index(row["axis"])]
        s = abs(row["shift_mm"])
        assert row["iou"] == pytest.approx((extent - s) / (extent + s), abs=1e-4)


def test_real_dose_box_contains_the_tumour_bed(rt_case):
    from rtsam.io import read_rtdose, read_rtstruct

    dose = read_rtdose(rt_case / "rtdose.dcm")
    box = dose_box(dose, threshold=0.8)
    bed = np.concatenate(read_rtstruct(rt_case / "rtss.dcm").structure("Tumor Bed").contours)
    assert np.all(bed.mean(axis=0) > box.box_lps[0]) and np.all(bed.mean(axis=0) < box.box_lps[1])
    assert box.dmax_gy == pytest.approx(14.68, abs=0.01)
