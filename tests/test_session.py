import threading

import numpy as np
import pytest
import torch

from rtsam.benchmark_interactive import box_from_label
from rtsam.engines.registry import load_engine
from rtsam.errors import GeometryError, InputError
from rtsam.io import read_image
from rtsam.session import Session
from rtsam.volume import Volume


@pytest.fixture(scope="module")
def case(data):
    torch.set_num_threads(2)
    image = read_image(data / "pyradiomics/brain1_image.nrrd")
    label = read_image(data / "pyradiomics/brain1_label.nrrd")
    crop = lambda v: Volume(v.array[13:16], v.spacing, tuple(v.ijk_to_lps([0, 0, 13])), v.direction)  # noqa: E731
    return crop(image), crop(label), load_engine("litemedsam")


def test_edit_predict_undo_redo(case):
    image, label, engine = case
    session = Session(image, engine)
    box = box_from_label(label, 5.0)
    session.set_box(box)
    first = session.predict()
    assert first.mask.same_grid(image) and "embed_ms" in first.timings_ms
    centre = image.ijk_to_lps(np.argwhere(label.array > 0).mean(axis=0)[::-1])
    assert session.add_click(centre, positive=True) == 0
    assert session.result is first  # the shown result until the next predict
    second = session.predict()
    assert "embed_ms" not in second.timings_ms  # embedding reused, decoder only
    assert session.undo() and session.prompt.clicks == [] and session.result is first
    assert session.redo() and len(session.prompt.clicks) == 1 and session.result is second
    session.remove_click(0)
    assert session.prompt.clicks == []
    assert session.undo() and len(session.prompt.clicks) == 1
    session.set_task("cerebral edema", "62 y, male")
    assert session.prompt.task == "cerebral edema" and not session.can_redo
    np.testing.assert_allclose(session.prompt.box_lps, box)


def test_bad_edits(case):
    image, label, engine = case
    session = Session(image, engine)
    assert not session.undo() and not session.redo()
    with pytest.raises(GeometryError):
        session.add_click((1e4, 0.0, 0.0))
    with pytest.raises(InputError, match="zero size"):
        session.set_box([0, 0, 0, 0, 10, 10])
    with pytest.raises(InputError, match="no click 0"):
        session.remove_click(0)
    with pytest.raises(InputError, match=r"presence must be 'on', 'off' or None \(the engine's default\), got 'yes'"):
        session.set_presence("yes")
    assert not session.can_undo  # a refused edit is no undo step
    lo, hi = image.bounds_lps()
    with pytest.raises(InputError, match="does not overlap"):
        session.set_box(np.stack([hi + 10, hi + 20]))


def test_threads_share_one_session(case):
    image, label, engine = case
    session = Session(image, engine)
    session.set_box(box_from_label(label, 5.0))
    results = []
    threads = [threading.Thread(target=lambda: results.append(session.predict())) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 2
    np.testing.assert_array_equal(results[0].mask.array, results[1].mask.array)
