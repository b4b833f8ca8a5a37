"""Crop geometry, resampling and the exact way back to the image grid."""

import numpy as np
import pytest

from conftest import oblique_direction
from rtsam.engines.sam3d.preprocess import (crop_geometry, crop_spacing, extract_crop, normalise,
                                            to_image_grid)
from rtsam.volume import Volume


def blob_image(direction=None) -> tuple[Volume, np.ndarray]:
    """Anisotropic image (0.8 x 1.1 x 2.5 mm) holding a 12 mm sphere; returns it and the centre (LPS)."""
    shape = (40, 90, 80)  # k, j, i
    image = Volume(np.zeros(shape, np.float32), (0.8, 1.1, 2.5), (-30.0, 12.0, 40.0),
                   oblique_direction() if direction is None else direction)
    k, j, i = np.indices(shape)
    lps = image.ijk_to_lps(np.stack([i, j, k], -1).reshape(-1, 3)).reshape(*shape, 3)
    centre = image.ijk_to_lps([45.0, 40.0, 22.0])
    image.array[np.linalg.norm(lps - centre, axis=-1) <= 12.0] = 100.0
    return image, centre


def dice(a, b):
    return 2 * np.logical_and(a, b).sum() / (a.sum() + b.sum())


def test_crop_is_centred_on_the_prompt_in_the_image_orientation():
    image, centre = blob_image()
    geometry = crop_geometry(image, centre, 64, 1.5)
    assert np.allclose(geometry.lps_to_dhw(centre), [[32, 32, 32]])
    assert np.allclose(np.reshape(geometry.direction, (3, 3)), image.direction)
    assert geometry.contains(centre) and not geometry.contains(centre + image.direction[:, 0] * 60)
    assert geometry.key == crop_geometry(image, centre + 1e-6, 64, 1.5).key


def test_blob_survives_the_round_trip_through_the_crop():
    image, centre = blob_image()
    geometry = crop_geometry(image, centre + [3.0, -2.0, 4.0], 64, 1.5)
    crop = extract_crop(image, geometry)
    assert crop.shape == (64, 64, 64)
    crop_mask = crop > 50
    expected_voxels = 4 / 3 * np.pi * 12.0**3 / 1.5**3
    assert abs(crop_mask.sum() / expected_voxels - 1) < 0.1
    back = to_image_grid(crop_mask.astype(np.float32), geometry, image) > 0.5
    truth = image.array > 50
    assert dice(back, truth) > 0.93
    back_centroid = image.ijk_to_lps(np.argwhere(back)[:, ::-1].mean(0))
    assert np.linalg.norm(back_centroid - centre) < 0.5


def test_region_outside_the_crop_is_zero_and_padding_uses_the_image_minimum():
    image, centre = blob_image()
    image.array[0, 0, 0] = -1000.0
    corner = image.ijk_to_lps([0.0, 0.0, 0.0])
    geometry = crop_geometry(image, corner, 32, 1.5)
    crop = extract_crop(image, geometry)
    assert crop.min() == -1000.0 and crop[0, 0, 0] == -1000.0  # outside the image
    back = to_image_grid(np.ones((32, 32, 32), np.float32), geometry, image)
    far = image.lps_to_ijk(centre).round().astype(int)
    assert back[far[2], far[1], far[0]] == 0 and back[0, 0, 0] == 1


def test_large_box_gets_a_coarser_spacing_that_fits_it():
    image, centre = blob_image(np.eye(3))
    small = np.array([centre - 50, centre + 50])
    large = np.array([centre - [150, 40, 40], centre + [150, 40, 40]])  # 300 mm wide
    assert crop_spacing(image, small, 128, 1.5) == 1.5
    spacing = crop_spacing(image, large, 128, 1.5)
    assert spacing == pytest.approx(300 / 126)
    geometry = crop_geometry(image, large.mean(0), 128, spacing)
    box = geometry.box_dhw(large)
    assert np.all(box >= 0) and np.all(box <= 127)
    assert box[:, 2] == pytest.approx([1, 127])  # the box spans the crop's i axis, inside it


def test_box_corners_map_to_crop_indices():
    image, centre = blob_image(np.eye(3))
    geometry = crop_geometry(image, centre, 64, 1.5)
    box = geometry.box_dhw(np.array([centre - [15, 6, 3], centre + [15, 6, 3]]))
    assert np.allclose(box, [[30, 28, 22], [34, 36, 42]])  # (d, h, w) = (k, j, i), 1.5 mm voxels


def test_normalise_uses_foreground_voxels():
    crop = np.zeros((10, 10, 10), np.float32)
    crop[:5] = np.linspace(10, 30, 500).reshape(5, 10, 10)
    out = normalise(crop)
    assert out[:5].mean() == pytest.approx(0, abs=1e-5) and out[:5].std() == pytest.approx(1, abs=1e-4)
    air = np.full((8, 8, 8), -1000.0, np.float32)
    air[0, 0, :4] = [-900, -950, -990, -800]
    assert normalise(air).std() == pytest.approx(1, abs=1e-4)
