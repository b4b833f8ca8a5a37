"""The sam3d engine on a crop of the real lung2 CT (tiny config, random weights: geometry and behaviour)."""

import numpy as np
import torch
import pytest

from rtsam.engines.base import Click, Prompt
from rtsam.engines.registry import load_engine
from rtsam.errors import CancelledError, GeometryError, InputError
from rtsam.io.images import read_image
from rtsam.volume import Volume


@pytest.fixture(scope="module")
def ct(data):
    """A 20 x 220 x 220 voxel crop (100 x 139 x 139 mm) of the lung2 CT, keeping its real geometry."""
    full = read_image(data / "pyradiomics" / "lung2_image.nrrd")
    lo = np.array([146, 146, 20])  # i, j, k
    array = full.array[lo[2]:lo[2] + 20, lo[1]:lo[1] + 220, lo[0]:lo[0] + 220]
    return Volume(array, full.spacing, tuple(full.ijk_to_lps(lo)), full.direction, metadata={"path": "lung2_image.nrrd"})


@pytest.fixture(scope="module")
def engine():
    return load_engine("sam3d-tiny")


def centre_of(image):
    lo, hi = image.bounds_lps()
    return (lo + hi) / 2


def test_predict_returns_a_result_on_the_image_grid(ct, engine):
    centre = centre_of(ct)
    box = np.array([centre - 15, centre + 15])
    steps = []
    result = engine.open(ct).predict(Prompt(box_lps=box), progress=lambda f, m: steps.append(f))
    assert result.probability.same_grid(ct) and result.mask.same_grid(ct)
    p = result.probability.array
    assert p.dtype == np.float32 and p.min() >= 0 and p.max() <= 1
    assert np.array_equal(result.mask.array, (p > 0.5).astype(np.uint8))
    assert np.isfinite(result.quality)
    assert (result.engine, result.weights) == ("sam3d-tiny", "random-init")
    assert set(result.timings_ms) == {"embed_ms", "decode_ms", "postprocess_ms"}
    assert steps[-1] == 1.0
    crop = result.state["crop"]
    assert crop.spacing == 1.5 and np.allclose(crop.lps_to_dhw(box.mean(0)), 32)
    outside = ct.lps_to_ijk(centre + [60.0, 60.0, 0.0]).round().astype(int)  # beyond the 96 mm crop
    assert p[outside[2], outside[1], outside[0]] == 0


def test_second_click_only_runs_the_decoder_and_feeds_back_logits(ct, engine):
    context = engine.open(ct)
    centre = centre_of(ct)
    box = np.array([centre - 15, centre + 15])
    first = context.predict(Prompt(box_lps=box))
    refine = Prompt(box_lps=box, clicks=[Click(tuple(centre + [5.0, 0.0, 0.0]), positive=False)])
    second = context.predict(refine, previous=first)
    assert context.embeddings_computed == 1
    assert second.state["crop_key"] == first.state["crop_key"]
    without_feedback = context.predict(refine)
    assert context.embeddings_computed == 1
    fed_back, fresh = (r.state["low_res_logits"] for r in (second, without_feedback))
    assert not torch.allclose(fed_back, fresh)  # the previous logits are the dense prompt


def test_click_outside_the_crop_moves_the_crop(ct, engine):
    context = engine.open(ct)
    centre = centre_of(ct)
    box = np.array([centre - 10, centre + 10])
    first = context.predict(Prompt(box_lps=box))
    far = tuple(centre + [55.0, 55.0, 0.0])
    assert not first.state["crop"].contains(far)
    moved = context.predict(Prompt(box_lps=box, clicks=[Click(far)]), previous=first)
    assert np.allclose(moved.state["crop"].lps_to_dhw(far), 32)
    assert context.embeddings_computed == 2
    near = tuple(np.asarray(far) - 8.0)
    again = context.predict(Prompt(box_lps=box, clicks=[Click(far), Click(near)]), previous=moved)
    assert again.state["crop_key"] == moved.state["crop_key"] and context.embeddings_computed == 2


def test_bad_prompts_and_cancel(ct, engine):
    context = engine.open(ct)
    centre = centre_of(ct)
    with pytest.raises(InputError, match="needs a box or at least one click"):
        context.predict(Prompt(task="segment bone"))
    with pytest.raises(GeometryError, match="outside the image"):
        context.predict(Prompt(clicks=[Click(tuple(centre + [500.0, 0.0, 0.0]))]))
    with pytest.raises(CancelledError):
        context.predict(Prompt(clicks=[Click(tuple(centre))]), cancel=lambda: True)
    with pytest.raises(InputError, match="the sam3d-tiny engine has no object-presence rule .* set presence 'off'"):
        context.predict(Prompt(clicks=[Click(tuple(centre))], presence="on"))
    with pytest.raises(InputError, match="unknown sam3d options: colour"):
        load_engine("sam3d-tiny", colour="red")


def test_autocast_embedding_stays_close_to_float32(ct):
    torch = pytest.importorskip("torch")
    box = np.array([centre_of(ct) - 15, centre_of(ct) + 15])
    results = []
    for autocast in (None, "bf16"):
        torch.manual_seed(0)
        results.append(load_engine("sam3d-tiny", autocast=autocast).open(ct).predict(Prompt(box_lps=box)))
    difference = np.abs(results[0].probability.array - results[1].probability.array)
    assert 0 < difference.max() < 0.05
    with pytest.raises(InputError, match="autocast must be one of bf16, fp16"):
        load_engine("sam3d-tiny", autocast="int8")
