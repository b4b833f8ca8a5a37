"""Slice batching of LiteMedSAM embeddings and SAM 3 image features (GPU path, forced on the CPU here):
the same results as one slice at a time, and an out-of-memory error shrinks the batch instead of failing."""

import logging

import numpy as np
import pytest
import torch
from sam3_helpers import crop, one_thread, tiny_dir  # noqa: F401 (fixtures)

from rtsam.engines import batching
from rtsam.engines.base import Prompt
from rtsam.engines.registry import load_engine
from rtsam.io.images import read_image
from rtsam.volume import Volume


class OutOfMemoryAbove(torch.nn.Module):
    """Wraps a module or method: raises CUDA's out-of-memory error for batches larger than ``limit``."""

    def __init__(self, module, limit):
        super().__init__()
        self.module, self.limit, self.batches = module, limit, []

    def forward(self, *args, **kwargs):
        x = args[0] if args else kwargs["pixel_values"]
        self.batches.append(x.shape[0])
        if x.shape[0] > self.limit:
            raise torch.OutOfMemoryError("CUDA out of memory (injected)")
        return self.module(*args, **kwargs)


@pytest.fixture
def gpu_batches(monkeypatch):
    """Pretend the device is a GPU with room for 8 slices per batch."""
    monkeypatch.setattr(batching, "batch_size", lambda device, bytes_per_slice, limit: min(8, limit))


def test_batch_size_from_free_memory(monkeypatch):
    assert batching.batch_size("cpu", 1.0, 32) == 1  # the CPU keeps one slice at a time
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (10 * 2**30, 80 * 2**30))
    assert batching.batch_size("cuda", 2**30, 32) == 6  # 60% of 10 GiB
    assert batching.batch_size("cuda", 2**20, 32) == 32 and batching.batch_size("cuda", 2**40, 32) == 1


def test_out_of_memory_halves_the_batch(caplog):
    seen = []

    def compute(chunk):
        seen.append(len(chunk))
        if len(chunk) > 2:
            raise torch.OutOfMemoryError("injected")
        return [k * 10 for k in chunk]

    with caplog.at_level(logging.WARNING):
        assert batching.run_batched(list(range(11)), compute, 8) == [k * 10 for k in range(11)]
    assert seen[:3] == [8, 4, 2] and set(seen[3:]) <= {1, 2}
    assert "out of GPU memory with 8 slices per batch; retrying with 4" in caplog.text
    with pytest.raises(torch.OutOfMemoryError):
        batching.run_batched([1], lambda chunk: compute([0, 0, 0]), 1)


def test_litemedsam_batched_embeddings_match_single_slices(data, gpu_batches):
    full = read_image(data / "pyradiomics" / "lung2_image.nrrd")
    label = read_image(data / "pyradiomics" / "lung2_label.nrrd").array
    k, j, i = np.nonzero(label)
    lo = [k.min() - 1, j.min() - 20, i.min() - 20]
    array = full.array[lo[0]:k.max() + 2, lo[1]:j.max() + 20, lo[2]:i.max() + 20]
    image = Volume(array, full.spacing, tuple(full.ijk_to_lps(lo[::-1])), full.direction)
    box = np.array(image.bounds_lps()) + np.array([[15.0, 15.0, 0.0], [-15.0, -15.0, 0.0]])
    engine = load_engine("litemedsam", device="cpu")
    batched = engine.open(image)
    encoder = batched.model.image_encoder = OutOfMemoryAbove(engine.model.image_encoder, 3)
    try:
        result = batched.predict(Prompt(box_lps=box))
    finally:
        engine.model.image_encoder = encoder.module
    # each CT window's pass prefetches the box's slices: 8 and 4 run out of memory, then at most 3
    half = len(encoder.batches) // 2
    for part in (encoder.batches[:half], encoder.batches[half:]):
        assert part[:2] == [8, 4] and max(part[2:]) <= 3
    window = result.state["window"]["name"]
    single = engine.open(image)
    single.use_window(window)
    slices = [k for name, _, k in batched.cached_slices if name == window]  # keyed (window, region, slice)
    assert len(slices) >= 8
    for k in slices:
        assert (batched.embedding(k, {}) - single.embedding(k, {})).abs().max() < 1e-4
    expected = engine.open(image).predict(Prompt(box_lps=box))
    assert np.abs(result.probability.array - expected.probability.array).max() < 1e-3


def test_sam3_batched_features_match_single_slices(tiny_dir, crop, gpu_batches):  # noqa: F811
    image, _ = crop
    engine = load_engine("sam3", checkpoint=tiny_dir, score_threshold=0.0, device="cpu")
    expected = engine.open(image).predict(Prompt(task="tumour"))
    monkey = OutOfMemoryAbove(engine.model.get_vision_features, 4)
    vars(engine.model)["get_vision_features"] = monkey  # shadows the method on this instance
    try:
        result = engine.open(image).predict(Prompt(task="tumour"))
    finally:
        del vars(engine.model)["get_vision_features"]
    assert monkey.batches == [8, 4, 4, 5, 4, 1]  # 13 slices, a cache of 8: 8 fails, 4 + 4; then 5 fails, 4 + 1
    assert np.abs(result.probability.array - expected.probability.array).max() < 1e-4
    assert np.array_equal(result.mask.array, expected.mask.array)
