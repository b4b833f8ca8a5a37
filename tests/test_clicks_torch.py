"""Click simulation in torch (training on the model's device) against the numpy/scipy reference,
on crops of the real lesion labels with a perturbed prediction (shifted, eroded, speckled)."""

import numpy as np
import pytest
import torch
from scipy import ndimage

from rtsam.io.images import read_image
from rtsam.prompts.clicks import next_clicks
from rtsam.prompts.clicks_torch import label_components, next_clicks_batch, squared_distance

CASES = ("brain1", "lung2", "brain2", "breast1")
SIZE = 40


def lesion_crop(data, case: str) -> np.ndarray:
    label = read_image(data / "pyradiomics" / f"{case}_label.nrrd").array > 0
    centre = [int(np.mean(a)) for a in np.nonzero(label)]
    part = label[tuple(slice(max(c - SIZE // 2, 0), max(c - SIZE // 2, 0) + SIZE) for c in centre)]
    crop = np.zeros((SIZE,) * 3, bool)
    crop[:part.shape[0], :part.shape[1], :part.shape[2]] = part
    return crop


@pytest.fixture(scope="module")
def batch(data):
    rng = np.random.default_rng(0)
    truths = [lesion_crop(data, case) for case in CASES]
    preds = [ndimage.binary_erosion(t, iterations=2) | ndimage.shift(t.astype(float), (3, -2, 1), order=0).astype(bool)
             ^ (rng.random(t.shape) < 0.002) for t in truths]
    return preds, truths


def as_clicks(coords, labels, b):
    return [(tuple(int(v) for v in coords[b, m].tolist()), bool(labels[b, m])) for m in range(labels.shape[1])
            if labels[b, m] >= 0]


def test_center_clicks_equal_the_reference(batch):
    preds, truths = batch
    coords, labels = next_clicks_batch(torch.from_numpy(np.stack(preds)), torch.from_numpy(np.stack(truths)), 4)
    for b, (pred, truth) in enumerate(zip(preds, truths)):
        expected = [(c.index_kji, c.positive) for c in next_clicks(pred, truth, n=4)]
        assert len(expected) == 4 and as_clicks(coords, labels, b) == expected, CASES[b]


def test_random_clicks_fall_in_the_reference_candidates(batch):
    preds, truths = batch
    generator = torch.Generator().manual_seed(3)
    coords, labels = next_clicks_batch(torch.from_numpy(np.stack(preds)), torch.from_numpy(np.stack(truths)), 4,
                                       mode="random", generator=generator)
    for b, (pred, truth) in enumerate(zip(preds, truths)):
        reference = next_clicks(pred, truth, n=4)  # centre clicks: one per component, in the same order
        for (voxel, positive), centre in zip(as_clicks(coords, labels, b), reference):
            region = (truth & ~pred) if positive else (pred & ~truth)
            components, _ = ndimage.label(region)
            component = components == components[centre.index_kji]
            assert positive == centre.positive and component[voxel]
            distance = ndimage.distance_transform_edt(np.pad(component, 1))[1:-1, 1:-1, 1:-1]
            assert distance[voxel] >= 0.5 * distance.max()
    again = next_clicks_batch(torch.from_numpy(np.stack(preds)), torch.from_numpy(np.stack(truths)), 4,
                              mode="random", generator=torch.Generator().manual_seed(3))
    assert torch.equal(again[0], coords)


def test_components_and_distances_match_scipy(batch):
    preds, truths = batch
    region = torch.from_numpy(np.stack([t & ~p for p, t in zip(preds, truths)]))
    values = label_components(region)
    for b in range(len(preds)):
        scipy_labels, count = ndimage.label(region[b].numpy())
        assert len(torch.unique(values[b])) - 1 == count
    mask = torch.from_numpy(np.pad(truths[0], 1))[None]
    exact = np.round(ndimage.distance_transform_edt(mask[0].numpy()) ** 2)
    assert np.array_equal(squared_distance(mask)[0].numpy(), exact)


def test_no_error_gives_padding_only():
    truth = torch.zeros(2, 8, 8, 8, dtype=torch.bool)
    truth[:, 2:5, 2:5, 2:5] = True
    coords, labels = next_clicks_batch(truth, truth, 3)
    assert coords.shape == (2, 3, 3) and (labels == -1).all()
