import numpy as np
import pytest

from rtsam.errors import GeometryError, InputError
from rtsam.itv.bench import load_case
from rtsam.itv.generator import lujan_excursion, make_4dct, phase_shift_lps
from rtsam.volume import Volume


@pytest.fixture(scope="module")
def lung_crop(data):
    return load_case("lung2", crop_mm=20.0)


@pytest.fixture(scope="module")
def generated(lung_crop):
    image, mask = lung_crop
    return make_4dct(image, mask, phases=6, amplitude_si_mm=10.0, amplitude_ap_mm=4.0)


def _centroid(mask: Volume) -> np.ndarray:
    return mask.ijk_to_lps(np.argwhere(mask.array > 0).mean(axis=0)[::-1])


def test_lujan_cos4_profile():
    fractions = np.linspace(0, 1, 11)
    assert np.allclose(lujan_excursion(fractions), np.cos(np.pi * fractions) ** 4)
    assert lujan_excursion(0.0) == 1.0 and abs(lujan_excursion(0.5)) < 1e-12
    # inhale (0 %): inferior (-z) and anterior (-y) in LPS
    assert np.allclose(phase_shift_lps(0.0, 10, 4), [0, -4, -10])


def test_truth_itv_is_union_of_phase_masks(generated):
    union = np.any([m.array > 0 for m in generated.phase_masks], axis=0)
    assert np.array_equal(union, generated.truth_itv.array > 0)
    assert union.sum() > generated.phase_masks[3].array.sum()  # motion makes the ITV larger than one phase


def test_lesion_follows_cos4_and_keeps_its_volume(lung_crop, generated):
    image, mask = lung_crop
    start = _centroid(mask)
    spacing = np.asarray(mask.spacing)
    for k, (phase, warped) in enumerate(zip(generated.phases, generated.phase_masks)):
        expected = phase_shift_lps(k / 6, 10.0, 4.0)
        assert np.allclose(phase.metadata["shift_lps_mm"], expected)
        # nearest-neighbour warping moves the mask by whole voxels: within half a voxel per axis
        assert np.all(np.abs(_centroid(warped) - start - expected) <= spacing / 2 + 1e-6)
        assert abs(int(warped.array.sum()) - int(mask.array.sum())) <= 0.02 * mask.array.sum()
    # end-exhale (50 %) is the CT as given
    assert np.abs(generated.phases[3].array.astype(float) - image.array).max() <= 1


def test_motion_fades_away_from_lesion(lung_crop):
    image, mask = lung_crop
    out = make_4dct(image, mask, phases=2, fade_mm=20.0)
    changed = np.abs(out.phases[0].array.astype(float) - image.array) > 1
    from scipy import ndimage

    distance = ndimage.distance_transform_edt(mask.array == 0, sampling=mask.spacing[::-1])
    assert changed[distance < 5].mean() > 0.2  # the lesion neighbourhood moves
    assert not changed[distance > 20 + 10 + 5].any()  # beyond fade + amplitude nothing moves


def test_transient_false_positives(lung_crop):
    image, mask = lung_crop
    out = make_4dct(image, mask, phases=4, transient_fp=2, fp_radius_mm=3.0, seed=3)
    extra = [int(((m.array > 0) & (out.truth_itv.array == 0)).sum()) for m in out.phase_masks]
    assert sum(e > 0 for e in extra) == 2
    assert out.truth_itv.array.sum() == np.any([m.array > 0 for m in make_4dct(image, mask, phases=4).phase_masks], 0).sum()


def test_bad_generator_input(lung_crop):
    image, mask = lung_crop
    with pytest.raises(InputError, match="at least 2 phases"):
        make_4dct(image, mask, phases=1)
    with pytest.raises(InputError, match="empty"):
        make_4dct(image, mask.with_array(np.zeros_like(mask.array)))
    with pytest.raises(GeometryError, match="not on the CT grid"):
        make_4dct(image, Volume(mask.array, (1, 1, 1)))
    with pytest.raises(InputError, match="invertible"):
        make_4dct(image, mask, amplitude_si_mm=25.0, fade_mm=30.0)
