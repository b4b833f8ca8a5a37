import numpy as np
import pytest

from rtsam.errors import InputError
from rtsam.itv.filters import filter_phases, neighbours, temporal_vote
from rtsam.itv.generator import make_4dct
from rtsam.itv.bench import load_case


@pytest.fixture(scope="module")
def noisy(data):
    image, mask = load_case("lung2", crop_mm=20.0)
    return make_4dct(image, mask, phases=8, transient_fp=3, fp_radius_mm=3.0, seed=1)


def test_neighbours_are_cyclic():
    assert neighbours(0, 10, 1) == [9, 1]
    assert neighbours(9, 10, 2) == [7, 8, 0, 1]
    assert neighbours(0, 2, 1) == [1]


def test_transients_removed_true_motion_kept(noisy):
    result = filter_phases([m.array for m in noisy.phase_masks], window=3)
    union = np.any(result.masks, axis=0)
    assert np.array_equal(union, noisy.truth_itv.array > 0)  # motion extremes kept, false positives gone
    transient = [r for r in result.removed if r["step"] == "transient"]
    assert len(transient) == 3
    for item in transient:
        centre = np.round(item["centroid_ijk"]).astype(int)
        assert noisy.truth_itv.array[tuple(centre[::-1])] == 0


def test_voxelwise_majority_shrinks_extremes(noisy):
    masks = [m.array for m in noisy.phase_masks]
    voxelwise = filter_phases(masks, window=3, voxelwise=True)
    union = np.any(voxelwise.masks, axis=0)
    assert union.sum() < noisy.truth_itv.array.sum()  # the documented trade-off of the voxel-wise vote
    assert not (union & (noisy.truth_itv.array == 0)).any()


def test_temporal_vote_majority_and_median():
    a = np.zeros((2, 2, 2), np.uint8)
    b = np.ones((2, 2, 2), np.uint8)
    out = temporal_vote([a, b, b, a], window=3)
    assert [int(m.sum()) for m in out] == [0, 8, 8, 0]
    probs = [np.full((2, 2, 2), v, np.float32) for v in (0.2, 0.9, 0.7, 0.1)]
    assert [int(m.sum()) for m in temporal_vote(probs, 3, "median")] == [0, 8, 8, 0]
    with pytest.raises(InputError, match="odd"):
        temporal_vote([a, b], window=2)
    with pytest.raises(InputError, match="majority"):
        temporal_vote([a, b], method="mean")


def test_connectivity_keeps_anchor_components():
    mask = np.zeros((5, 20, 20), np.uint8)
    mask[1:4, 2:6, 2:6] = 1  # lesion
    mask[1:4, 14:18, 14:18] = 1  # unrelated structure, present in every phase
    anchor = np.zeros_like(mask)
    anchor[:, 0:8, 0:8] = 1
    result = filter_phases([mask, mask, mask], anchors=[anchor] * 3)
    assert all(int(m.sum()) == 48 for m in result.masks)
    assert [r["step"] for r in result.removed] == ["connectivity"] * 3
