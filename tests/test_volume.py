"""The Volume type: LPS geometry, RAS helpers and the SimpleITK round trip."""

import numpy as np
import pytest
import SimpleITK as sitk

from conftest import oblique_direction
from rtsam.errors import GeometryError, InputError
from rtsam.volume import Volume, lps_to_ras, ras_to_lps


@pytest.fixture
def volume(rng):
    return Volume(rng.integers(-1000, 2000, size=(7, 9, 11)).astype(np.int16), spacing=(0.6, 1.3, 4.0),
                  origin=(-250.5, -180.25, -612.0), direction=oblique_direction(30))


def test_ijk_lps_round_trip_and_formula(volume, rng):
    ijk = rng.uniform(-2, 12, size=(50, 3))
    lps = volume.ijk_to_lps(ijk)
    np.testing.assert_allclose(volume.lps_to_ijk(lps), ijk, atol=1e-9)
    # lps = origin + direction @ (spacing * ijk), one point by hand
    expected = np.asarray(volume.origin) + volume.direction @ (np.asarray(volume.spacing) * ijk[0])
    np.testing.assert_allclose(lps[0], expected)
    homogeneous = volume.ijk_to_lps_matrix @ np.append(ijk[0], 1.0)
    np.testing.assert_allclose(homogeneous[:3], expected)


def test_step_along_each_axis_has_the_spacing_length(volume):
    for axis in range(3):
        step = np.zeros(3)
        step[axis] = 1
        moved = volume.ijk_to_lps(step) - volume.ijk_to_lps(np.zeros(3))
        assert np.linalg.norm(moved) == pytest.approx(volume.spacing[axis])
        np.testing.assert_allclose(moved / volume.spacing[axis], volume.direction[:, axis])


def test_ras_helpers(volume):
    np.testing.assert_array_equal(lps_to_ras([[10.0, -20.0, 30.0]]), [[-10.0, 20.0, 30.0]])
    pts = np.array([[1.0, 2.0, 3.0], [-4.0, 5.5, -6.0]])
    np.testing.assert_array_equal(ras_to_lps(lps_to_ras(pts)), pts)
    ijk = np.array([3.0, 4.0, 5.0, 1.0])
    ras = volume.ijk_to_ras_matrix @ ijk
    np.testing.assert_allclose(ras[:3], lps_to_ras(volume.ijk_to_lps(ijk[:3])))
    assert volume.ijk_to_ras_matrix[3].tolist() == [0, 0, 0, 1]


def test_simpleitk_round_trip_is_exact(volume):
    image = volume.to_sitk()
    assert image.GetSize() == volume.size_ijk == (11, 9, 7)
    # SimpleITK's own index -> physical mapping agrees with ours
    for index in [(0, 0, 0), (10, 8, 6), (3, 7, 2)]:
        np.testing.assert_allclose(image.TransformIndexToPhysicalPoint(index), volume.ijk_to_lps(index), atol=1e-9)
    assert image.GetPixel(3, 7, 2) == volume.array[2, 7, 3]
    back = Volume.from_sitk(image)
    np.testing.assert_array_equal(back.array, volume.array)
    assert back.spacing == volume.spacing and back.origin == volume.origin
    np.testing.assert_array_equal(back.direction, volume.direction)


def test_bool_to_sitk_is_uint8():
    image = Volume(np.ones((2, 2, 2), bool)).to_sitk()
    assert image.GetPixelID() == sitk.sitkUInt8


def test_bounds_contains_and_check_inside(volume):
    lo, hi = volume.bounds_lps()
    assert np.all(lo < hi) and volume.corners_lps().shape == (8, 3)
    centre = volume.ijk_to_lps([5, 4, 3])
    outside = volume.ijk_to_lps([5, 4, 20])
    np.testing.assert_array_equal(volume.contains_lps([centre, outside]), [True, False])
    volume.check_inside(centre)
    volume.metadata["path"] = "ct.nrrd"
    with pytest.raises(GeometryError, match="ct.nrrd: box corner at LPS .* is outside the image"):
        volume.check_inside([centre, outside], what="box corner")


def test_same_grid_with_array_and_validation(volume):
    labels = volume.with_array(volume.array > 0, kind="mask")
    assert labels.same_grid(volume) and labels.metadata["kind"] == "mask"
    shifted = Volume(volume.array, volume.spacing, (0.0, 0.0, 0.0), volume.direction)
    assert not shifted.same_grid(volume)
    with pytest.raises(GeometryError, match="does not match grid"):
        volume.with_array(np.zeros((2, 2, 2)))
    with pytest.raises(InputError, match="expected a 3D volume"):
        Volume(np.zeros((3, 3)))
    with pytest.raises(InputError, match="spacing must be positive"):
        Volume(np.zeros((2, 2, 2)), spacing=(1.0, 0.0, 1.0))
    with pytest.raises(InputError, match="3D single-component"):
        Volume.from_sitk(sitk.Image(4, 4, sitk.sitkFloat32))
    assert volume.voxel_volume_ml == pytest.approx(0.6 * 1.3 * 4.0 / 1000)
