"""torch.compile of the warm sam3d engine: same masks when it works, eager with a log line when it does not."""

import logging

import numpy as np
import pytest
import torch

from rtsam.engines.base import Click, Prompt
from rtsam.engines.registry import load_engine
from rtsam.server.app import compile_warm_engine
from rtsam.volume import Volume

BOX = np.array([[15.0, 15.0, 15.0], [45.0, 45.0, 45.0]])


@pytest.fixture(scope="module")
def image():
    return Volume(np.random.default_rng(0).normal(size=(40, 40, 40)).astype(np.float32), (1.5, 1.5, 1.5))


def clicked(engine, image):
    context = engine.open(image)
    first = context.predict(Prompt(clicks=[Click((30.0, 30.0, 30.0))]))
    return first, context.predict(Prompt(clicks=[Click((30.0, 30.0, 30.0)), Click((22.0, 30.0, 30.0), False)]),
                                  previous=first)


def test_compiled_encoder_and_decoder_give_the_same_masks(image):
    eager = load_engine("sam3d-tiny", device="cpu")
    compiled = load_engine("sam3d-tiny", device="cpu")
    compiled.model.load_state_dict(eager.model.state_dict())
    assert compiled.compile(decoder=True, backend="eager")  # dynamo capture; inductor needs a compiler + time
    for a, b in zip(clicked(eager, image), clicked(compiled, image)):
        assert np.array_equal(a.mask.array, b.mask.array)
        assert np.abs(a.probability.array - b.probability.array).max() < 1e-5
    assert set(compiled.model.state_dict()) == set(eager.model.state_dict())  # keys unchanged (in-place compile)


def test_failed_compile_keeps_the_eager_engine_with_a_log_line(image, monkeypatch, caplog):
    engine = load_engine("sam3d-tiny", device="cpu")

    def broken(self, *args, **kwargs):
        self._compiled_call_impl = lambda *a, **k: (_ for _ in ()).throw(RuntimeError("no C compiler"))

    monkeypatch.setattr(torch.nn.Module, "compile", broken)
    with caplog.at_level(logging.WARNING):
        assert not engine.compile(decoder=True)
    assert "torch.compile unavailable (RuntimeError: no C compiler); running eager" in caplog.text
    assert engine.model.image_encoder._compiled_call_impl is None
    assert engine.open(image).predict(Prompt(box_lps=BOX)).mask.array.shape == (40, 40, 40)


def test_server_compiles_only_on_cuda():
    engine = load_engine("sam3d-tiny", device="cpu")
    assert not compile_warm_engine(engine)  # CPU: the warm engine stays eager
    assert engine.model.image_encoder._compiled_call_impl is None
