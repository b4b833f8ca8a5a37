"""LiteMedSAM's object-presence evidence and rules (the engine end to end is in test_litemedsam.py)."""

import numpy as np
import pytest

from rtsam.engines.litemedsam_evidence import SeedModel, SeedPrototype, inside_and_ring
from rtsam.engines.litemedsam_prep import Letterbox
from rtsam.engines.registry import load_engine
from rtsam.engines.litemedsam_presence import PresenceRule, PresenceWalk
from rtsam.errors import InputError
from rtsam.io import read_image


def test_seed_likeness_tells_lesion_slices_from_margin_slices(data):
    """brain1 (6.5 mm MR slices, lesion on slices 11-17): against the seed slice 14's lesion and
    ring, the lesion on the other slices is lesion-like and its ring is not; the seed's outline
    moved onto the slices beyond the lesion holds no more lesion-like values than its ring."""
    image = read_image(data / "pyradiomics/brain1_image.nrrd")
    truth = read_image(data / "pyradiomics/brain1_label.nrrd").array > 0
    spacing = image.spacing[:2]
    seed = SeedModel.of(image.array[14], truth[14], spacing)

    def gap(k, mask):
        inside, ring = inside_and_ring(image.array[k], mask, spacing)
        return seed.likeness(inside) - seed.likeness(ring)

    assert min(gap(k, truth[k]) for k in (12, 13, 15, 16, 17)) > 0.3
    assert max(gap(k, truth[14]) for k in (9, 10, 18, 19)) < 0.1
    assert SeedModel.of(image.array[14], np.zeros_like(truth[14]), spacing) is None


def test_seed_prototype_gap_in_feature_space():
    """Cells inside a square carry feature a, the rest feature b: a mask on the square scores
    1 - cos(a, b), one outside cos(b, a) - 1, an empty one 0."""
    a, b = np.array([1.0, 0.0, 0.0]), np.array([0.6, 0.8, 0.0])
    square = np.zeros((16, 16), dtype=bool)
    square[5:11, 5:11] = True
    embedding = np.where(square[None], a[:, None, None], b[:, None, None])
    seed = SeedPrototype.of(embedding, square.astype(np.float32))
    outside = np.zeros((16, 16), dtype=np.float32)
    outside[0:3, 0:3] = 1.0
    assert seed.gap(embedding, square.astype(np.float32)) == pytest.approx(1 - 0.6)
    assert seed.gap(embedding, outside) == pytest.approx(0.6 - 1)
    assert seed.gap(embedding, np.zeros((16, 16), dtype=np.float32)) == 0.0
    assert SeedPrototype.of(embedding, np.zeros((16, 16), dtype=np.float32)) is None


def test_cell_shares_follow_the_letterbox():
    """A 64 x 128 slice fills the top half of the 256 grid: its top-left quarter covers 16 x 32 of
    the 64 x 64 embedding cells, the padding none."""
    mask = np.zeros((64, 128), dtype=bool)
    mask[:32, :64] = True
    shares = Letterbox((64, 128)).cell_shares(mask, (64, 64))
    assert shares.shape == (64, 64) and shares.sum() == pytest.approx(16 * 32)
    assert shares[:16, :32].min() == pytest.approx(1.0) and shares[16:].max() == 0.0 and shares[:, 32:].max() == 0.0


def test_embedding_gap_tells_lesion_slices_from_margin_slices(data):
    """brain1, as in the likeness test above but in LiteMedSAM's image features: the lesion on the
    other slices is closer to the seed's lesion than to its ring; the seed's outline moved onto the
    slices beyond the lesion is not."""
    image = read_image(data / "pyradiomics/brain1_image.nrrd")
    truth = read_image(data / "pyradiomics/brain1_label.nrrd").array > 0
    context = load_engine("litemedsam").open(image)

    def features(k, mask):
        return context.features(k, mask.astype(np.float32), {})

    seed = SeedPrototype.of(*features(14, truth[14]))
    assert min(seed.gap(*features(k, truth[k])) for k in (12, 13, 15, 16, 17)) > 0.1
    assert max(seed.gap(*features(k, truth[14])) for k in (9, 10, 18, 19)) < 0.0


def _walk(rule, fails_at: set[int]) -> set[int]:
    """Slices 0..6 seeded at 3, each failing exactly when in ``fails_at``: the slices cleared."""
    order = [(3, None), (4, 3), (5, 4), (6, 5), (2, 3), (1, 2), (0, 1)]
    walk, cleared = PresenceWalk(rule, order, slice_mm=5.0), set()
    for k, source in order:
        if walk.beyond_end(source):
            walk.skipped(k)
            cleared.add(k)
            continue
        evidence = {"contrast": 0.0 if k in fails_at else 1.0}
        cleared |= set(walk.judge(k, source, evidence, {"contrast": 1.0}, {"contrast": 1.0}, clicked=False))
    return cleared


def test_presence_walk_runs_edges_and_guards():
    single = PresenceRule((("contrast", 0.5),))
    assert _walk(single, {5}) == {5, 6} and _walk(single, {1}) == {0, 1}
    pair = PresenceRule((("contrast", 0.5),), run=2)
    assert _walk(pair, {4}) == set()  # one failing slice inside the lesion is kept
    assert _walk(pair, {4, 5}) == {4, 5, 6}
    assert _walk(pair, {6}) == {6}  # past the box's last slice counts as failing
    assert _walk(PresenceRule((("contrast", 0.5),), run=2, edge_fails=False), {6}) == set()
    assert _walk(PresenceRule((("contrast", 0.5),), inner=0.5), {4, 2}) == set()  # a third of the way out
    assert _walk(PresenceRule((("contrast", 0.5),), guard_mm=5.0), {4, 1}) == {0, 1}
    assert _walk(None, {4, 5}) == set()
    with pytest.raises(InputError, match="presence rule"):
        PresenceRule((("brightness", 0.5),))
