import numpy as np
import pytest

from rtsam.errors import InputError
from rtsam.prompts.clicks import SimClick, error_regions, next_clicks, simulate_clicks
from rtsam.volume import Volume


def test_error_regions_split_false_negatives_and_positives():
    truth = np.zeros((1, 1, 4), bool); truth[0, 0, :2] = True
    pred = np.zeros((1, 1, 4), bool); pred[0, 0, 1:3] = True
    fn, fp = error_regions(pred, truth)
    assert fn[0, 0].tolist() == [True, False, False, False]
    assert fp[0, 0].tolist() == [False, False, True, False]


def test_center_click_in_largest_component_interior():
    truth = np.zeros((9, 20, 20), bool)
    truth[1:8, 2:9, 2:9] = True  # missed 7x7x7 cube, centre (4, 5, 5)
    pred = np.zeros_like(truth)
    pred[4, 15:17, 15:17] = True  # small false positive
    clicks = next_clicks(pred, truth, n=2)
    assert clicks[0] == SimClick((4, 5, 5), True)
    assert not clicks[1].positive and clicks[1].index_kji[0] == 4 and pred[clicks[1].index_kji]


def test_spacing_makes_thin_slabs_deep():
    truth = np.zeros((3, 9, 9), bool)
    truth[:, :, :] = True  # 3 slices thick: in voxels the k border limits every in-plane point
    pred = np.zeros_like(truth)
    (spaced,) = next_clicks(pred, truth, spacing=(1.0, 1.0, 3.0))
    (plain,) = next_clicks(pred, truth)
    assert spaced.index_kji == (1, 4, 4)
    assert plain.index_kji != (1, 4, 4)


def test_no_errors_no_clicks_and_fewer_components_than_n():
    truth = np.zeros((3, 6, 6), bool); truth[1, 2:4, 2:4] = True
    assert next_clicks(truth, truth, n=3) == []
    assert len(next_clicks(np.zeros_like(truth), truth, n=3)) == 1


def test_random_mode_is_seeded_and_inside_the_error():
    truth = np.zeros((4, 30, 30), bool); truth[:, 5:25, 5:25] = True
    pred = np.zeros_like(truth)
    a = next_clicks(pred, truth, mode="random", rng=7)[0]
    b = next_clicks(pred, truth, mode="random", rng=7)[0]
    others = {next_clicks(pred, truth, mode="random", rng=s)[0] for s in range(8)}
    assert a == b and len(others) > 1
    assert all(truth[c.index_kji] for c in others)


def test_bad_mode_and_shape():
    with pytest.raises(InputError):
        next_clicks(np.zeros((2, 2, 2)), np.zeros((2, 2, 2)), mode="edge")
    with pytest.raises(InputError):
        error_regions(np.zeros((2, 2, 2)), np.zeros((2, 2, 3)))


def test_simulate_clicks_iterates_until_fixed():
    truth = np.zeros((5, 10, 10), bool); truth[1:4, 2:5, 2:5] = True; truth[1:4, 6:9, 6:9] = True

    def predict(clicks):  # each positive click fills its own 3x3x3 cube exactly
        pred = np.zeros_like(truth)
        for c in clicks:
            k, j, i = c.index_kji
            pred[k - 1:k + 2, j - 1:j + 2, i - 1:i + 2] = c.positive
        return pred

    rounds = simulate_clicks(predict, truth, iterations=3, clicks=1)
    assert [len(r) for r in rounds] == [1, 1]
    assert {r[0].index_kji for r in rounds} == {(2, 3, 3), (2, 7, 7)}


def test_to_click_maps_index_to_lps():
    image = Volume(np.zeros((3, 4, 5)), spacing=(2.0, 3.0, 4.0), origin=(10.0, 20.0, 30.0))
    click = SimClick((2, 1, 3), False).to_click(image)
    assert click.lps == (16.0, 23.0, 38.0) and not click.positive
