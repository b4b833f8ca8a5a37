"""Resampling between grids and the frame-of-reference / overlap checks."""

import numpy as np
import pytest
from scipy.ndimage import map_coordinates

from conftest import oblique_direction
from rtsam.errors import GeometryError, InputError
from rtsam.io import read_image, read_rtdose
from rtsam.resample import check_compatible, overlap_fraction, resample_to
from rtsam.volume import Volume


@pytest.fixture(scope="module")
def dose(rt_case):
    return read_rtdose(rt_case / "rtdose.dcm")


@pytest.fixture(scope="module")
def ct_slice(rt_case):
    return read_image(rt_case / "ct.0.dcm")


def crop(volume, k0, k1, j0, j1, i0, i1):
    origin = volume.ijk_to_lps([i0, j0, k0])
    return Volume(volume.array[k0:k1, j0:j1, i0:i1].copy(), volume.spacing, tuple(origin), volume.direction,
                  volume.frame_of_reference_uid, dict(volume.metadata))


def test_real_ct_slice_shares_the_dose_frame_and_gets_its_top_frame(dose, ct_slice):
    assert ct_slice.array.shape == (1, 512, 512) and ct_slice.metadata["modality"] == "CT"
    assert ct_slice.frame_of_reference_uid == dose.frame_of_reference_uid
    assert 0 < check_compatible(dose, ct_slice) < 0.05  # one CT slice: the dose's top frame
    on_ct = resample_to(dose, ct_slice)
    assert on_ct.same_grid(ct_slice) and on_ct.array.dtype == np.float32
    assert 0 < on_ct.array.max() <= dose.array[-1].max() + 1e-6


def test_real_dose_onto_ct_grid_matches_trilinear_interpolation(dose, ct_slice):
    k_max = np.unravel_index(dose.array.argmax(), dose.array.shape)[0]
    z_max = dose.ijk_to_lps([0, 0, k_max])[2]
    ct = Volume(np.zeros((4, 512, 512), np.int16), spacing=(*ct_slice.spacing[:2], 1.3),
                origin=(*ct_slice.origin[:2], z_max - 2.0), frame_of_reference_uid=ct_slice.frame_of_reference_uid)
    on_ct = resample_to(dose, ct)
    grid = np.stack(np.meshgrid(np.arange(512), np.arange(512), np.arange(4), indexing="ij"), -1).reshape(-1, 3)
    ijk = dose.lps_to_ijk(ct.ijk_to_lps(grid))
    expected = map_coordinates(dose.array.astype(np.float64), ijk[:, ::-1].T, order=1, cval=0.0)
    inside = np.all((ijk > 0.01) & (ijk < np.array(dose.size_ijk) - 1.01), axis=1)
    assert inside.sum() > 200000 and expected[inside].max() > 14.0
    got = on_ct.array[grid[:, 2], grid[:, 1], grid[:, 0]]
    np.testing.assert_allclose(got[inside], expected[inside], atol=1e-4)


def test_dose_to_finer_grid_and_back_is_exact_at_dose_voxels(dose):
    small = crop(dose, 40, 50, 30, 60, 60, 100)
    fine = Volume(np.zeros((19, 59, 79), np.int16), spacing=(1.25, 1.25, 1.5), origin=small.origin)
    there = resample_to(small, fine)
    back = resample_to(there, small)
    np.testing.assert_allclose(back.array, small.array, atol=1e-5)
    assert back.spacing == small.spacing and back.origin == small.origin
    np.testing.assert_array_equal(back.direction, small.direction)


def test_oblique_linear_field_is_reproduced(rng):
    gradient, offset = np.array([0.3, -0.2, 0.5]), 7.0
    source = Volume(np.zeros((30, 30, 30)), spacing=(2.0, 2.0, 2.5), origin=(-30.0, -30.0, -37.5))
    ijk = np.stack(np.meshgrid(*[np.arange(30)] * 3, indexing="ij"), -1)
    source.array = (source.ijk_to_lps(ijk) @ gradient + offset).transpose(2, 1, 0).astype(np.float32)
    target = Volume(np.zeros((8, 9, 10)), spacing=(1.1, 1.7, 2.3), origin=(-8.0, -6.0, -9.0),
                    direction=oblique_direction(25))
    out = resample_to(source, target).array
    tk = np.stack(np.meshgrid(np.arange(10), np.arange(9), np.arange(8), indexing="ij"), -1)
    expected = (target.ijk_to_lps(tk) @ gradient + offset).transpose(2, 1, 0)
    np.testing.assert_allclose(out, expected, atol=1e-4)


def test_nearest_keeps_labels_and_outside_gets_default():
    labels = Volume(np.arange(27, dtype=np.uint8).reshape(3, 3, 3), spacing=(2, 2, 2))
    shifted = Volume(np.zeros((3, 3, 3)), spacing=(2, 2, 2), origin=(2.0, 0.0, 0.0))
    out = resample_to(labels, shifted, interpolation="nearest", default_value=255)
    assert out.array.dtype == np.uint8
    np.testing.assert_array_equal(out.array[:, :, :2], labels.array[:, :, 1:])
    assert np.all(out.array[:, :, 2] == 255)
    mask = Volume(labels.array > 13)
    assert resample_to(mask, mask, interpolation="nearest").array.dtype == bool
    with pytest.raises(InputError, match="interpolation must be one of"):
        resample_to(labels, shifted, interpolation="cubic")


def test_frame_of_reference_and_overlap_checks(dose):
    image = Volume(np.zeros((10, 10, 10)), spacing=(5, 5, 5), origin=dose.origin, frame_of_reference_uid="1.2.3")
    with pytest.raises(GeometryError, match="frame of reference .* differs from 1.2.3") as info:
        check_compatible(dose, image)
    assert dose.metadata["path"] in str(info.value)
    assert check_compatible(dose, image, allow_frame_mismatch=True) > 0
    far = Volume(np.zeros((10, 10, 10)), origin=(0.0, 0.0, 5000.0), frame_of_reference_uid=dose.frame_of_reference_uid)
    with pytest.raises(GeometryError, match="does not overlap") as info:
        check_compatible(dose, far, allow_frame_mismatch=True)
    assert dose.metadata["path"] in str(info.value)
    assert overlap_fraction(dose, far) == 0.0
    assert overlap_fraction(dose, dose) == 1.0


def test_overlap_fraction_of_half_shifted_grid():
    a = Volume(np.zeros((10, 10, 32)), spacing=(1, 1, 1))
    b = Volume(np.zeros((10, 10, 32)), spacing=(1, 1, 1), origin=(16.0, 0.0, 0.0))
    assert overlap_fraction(a, b) == pytest.approx(0.5, abs=0.05)


def test_a_single_slice_reference_inside_the_dose_overlaps():
    dose = Volume(np.ones((98, 20, 20), np.float32), spacing=(2.5, 2.5, 3.0), origin=(0, 0, -100))
    one_slice = Volume(np.zeros((1, 30, 30), np.int16), spacing=(1, 1, 3.0), origin=(5, 5, -10.4))
    assert check_compatible(dose, one_slice) == 0.0  # no sampled dose plane falls on the slice
