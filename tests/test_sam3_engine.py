"""The sam3 engine: a tiny SAM 3 saved with save_pretrained, loaded through the registry."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from sam3_helpers import crop, one_thread, tiny_dir  # noqa: F401 (fixtures)

from rtsam.cli import main
from rtsam.engines.base import Click, Prompt
from rtsam.engines.registry import load_engine
from rtsam.errors import CancelledError, InputError
from rtsam.io import read_image, write_image


@pytest.fixture(scope="module")
def engine(tiny_dir):
    return load_engine("sam3", checkpoint=tiny_dir, score_threshold=0.0)


def test_segments_real_crop_on_the_image_grid(engine, crop, tiny_dir):
    image, _ = crop
    context = engine.open(image)
    seen = []
    result = context.predict(Prompt(task="tumour"), progress=lambda f, m: seen.append(f))
    assert result.mask.same_grid(image) and result.probability.same_grid(image)
    assert result.mask.array.dtype == np.uint8 and set(np.unique(result.mask.array)) <= {0, 1}
    assert 0.0 <= result.probability.array.min() and result.probability.array.max() <= 1.0
    assert result.mask.array.any(axis=(1, 2)).all()  # threshold 0 keeps every query: each slice has a mask
    assert np.array_equal(result.mask.array, (result.probability.array > 0.5).astype(np.uint8))
    assert result.engine == "sam3" and result.weights.startswith("tiny-sam3@sha256:")
    assert 0.0 < result.quality <= 1.0
    assert seen[-1] == 1.0 and len(seen) == image.array.shape[0]
    assert sorted(context.cached_slices) == list(range(5, 13))  # LRU of 8 slices
    box = np.array([image.ijk_to_lps([0, 0, 6]), image.ijk_to_lps([63, 63, 10])])  # cached slices only
    lung = context.predict(Prompt(task="lung", box_lps=box))
    assert "embed_ms" not in lung.timings_ms and "text_ms" in lung.timings_ms
    again = context.predict(Prompt(task="tumour", box_lps=box))
    assert "embed_ms" not in again.timings_ms and "text_ms" not in again.timings_ms
    fresh = engine.open(image).predict(Prompt(task="tumour"))
    np.testing.assert_array_equal(fresh.probability.array, result.probability.array)


def test_box_restricts_slices_and_plane_and_is_a_box_prompt(engine, crop, tiny_dir):
    image, _ = crop
    box = np.array([image.ijk_to_lps([20, 16, 3]), image.ijk_to_lps([44, 40, 7])])
    result = engine.open(image).predict(Prompt(task="tumour", box_lps=box))
    k, j, i = np.nonzero(result.mask.array)
    assert k.min() >= 3 and k.max() <= 7 and j.min() >= 16 and j.max() <= 40 and i.min() >= 20 and i.max() <= 44
    plain = load_engine("sam3", checkpoint=tiny_dir, score_threshold=0.0, box_prompt=False)
    unprompted = plain.open(image).predict(Prompt(task="tumour", box_lps=box))
    assert not np.allclose(unprompted.probability.array[3:8], result.probability.array[3:8])  # the box went in
    assert not unprompted.probability.array[[0, 1, 2, 8]].any()


def test_threshold_above_every_score_finds_nothing(tiny_dir, crop):
    result = load_engine("sam3", checkpoint=tiny_dir, score_threshold=1.0).segment(crop[0], Prompt(task="lung"))
    assert not result.mask.array.any() and result.quality == 0.0


def test_best_instance_only_and_cancel(tiny_dir, engine, crop):
    image = crop[0]
    every = engine.open(image).predict(Prompt(task="tumour")).probability.array
    best = load_engine("sam3", checkpoint=tiny_dir, score_threshold=0.0, max_instances=1).open(image)
    one = best.predict(Prompt(task="tumour")).probability.array
    assert np.all(one <= every + 1e-6) and not np.allclose(one, every)  # one query's mask of the 8 joined
    with pytest.raises(CancelledError):
        best.predict(Prompt(task="tumour"), cancel=lambda: True)


def test_loads_facebook_sam3_video_layout(tiny_dir, tmp_path, engine, crop):
    """facebook/sam3 ships a sam3_video config with the detector under ``detector_config`` and
    its weights prefixed ``detector_model.``; the engine loads that part."""
    video = tmp_path / "sam3-video"
    video.mkdir()
    config = json.loads((tiny_dir / "config.json").read_text())
    (video / "config.json").write_text(json.dumps({"model_type": "sam3_video", "detector_config": config}))
    weights = {f"detector_model.{k}": v for k, v in load_file(tiny_dir / "model.safetensors").items()}
    weights["tracker_model.unused"] = torch.zeros(2)
    save_file(weights, video / "model.safetensors", metadata={"format": "pt"})
    for name in ("tokenizer.json", "tokenizer_config.json", "processor_config.json"):
        (video / name).write_bytes((tiny_dir / name).read_bytes())
    image = crop[0]
    expected = engine.open(image).predict(Prompt(task="tumour")).probability.array
    got = load_engine("sam3", checkpoint=video, score_threshold=0.0).open(image).predict(Prompt(task="tumour"))
    np.testing.assert_allclose(got.probability.array, expected, atol=1e-6)


def test_segment_cli_with_sam3(tiny_dir, crop, tmp_path, capsys):
    image_path = write_image(crop[0], tmp_path / "image.nrrd")
    out = tmp_path / "mask.nrrd"
    assert main(["segment", str(image_path), "--engine", "sam3", "--checkpoint", str(tiny_dir),
                 "--task", "tumour", "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["engine"] == "sam3" and read_image(out).same_grid(crop[0])


def test_clear_errors(tiny_dir, tmp_path, engine, crop):
    with pytest.raises(InputError, match="weights folder not found"):
        load_engine("sam3", checkpoint=tmp_path / "missing")
    with pytest.raises(InputError, match="engine .sam3. ships no weights: give a local SAM 3 folder"):
        load_engine("sam3")
    bert = tmp_path / "bert"
    bert.mkdir()
    (bert / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(InputError, match="not a SAM 3 model: model_type is 'bert'") as error:
        load_engine("sam3", checkpoint=bert)
    assert str(bert / "config.json") in str(error.value)
    empty = tmp_path / "no-weights"
    empty.mkdir()
    (empty / "config.json").write_bytes((tiny_dir / "config.json").read_bytes())
    with pytest.raises(InputError, match="no model weights"):
        load_engine("sam3", checkpoint=empty)
    context = engine.open(crop[0])
    with pytest.raises(InputError, match="prompted by text"):
        context.predict(Prompt(task="  "))
    with pytest.raises(InputError, match="not clicks"):
        context.predict(Prompt(task="tumour", clicks=[Click(tuple(crop[0].ijk_to_lps([3, 3, 3])))]))
    with pytest.raises(InputError, match="the sam3 engine has no object-presence rule"):
        context.predict(Prompt(task="tumour", presence="on"))


def test_itv_per_phase_from_text_and_from_a_mask(engine, crop):
    """ITV with sam3 on every phase: prompts derived from results carry no clicks."""
    from rtsam.itv.generator import make_4dct
    from rtsam.itv.phases import make_phases
    from rtsam.itv.pipeline import run_itv

    image, label = crop
    generated = make_4dct(image, label, phases=3, amplitude_si_mm=0.0, amplitude_ap_mm=3.0, fade_mm=10.0)
    phases = make_phases(generated.phases, [0, 1, 2], "tiny sam3 4dct")
    from_text = run_itv(phases, Prompt(task="tumour"), engine=engine, propagation="engine")
    from_mask = run_itv(phases, Prompt(task="tumour"), generated.phase_masks[0], engine=engine, propagation="engine")
    for result in (from_text, from_mask):
        assert result.report["engine"] == "sam3" and result.itv.array.any()
        assert [row["from_phase"] for row in result.report["per_phase"]] == [None, "0", "0"]
    assert from_text.itv.same_grid(image)
