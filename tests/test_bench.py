"""``rtsam bench`` with the tiny config (checks the report, never the speed)."""

import json

import pytest

from rtsam import data
from rtsam.bench import bench_input
from rtsam.cli import main

KEYS = {"embed_ms", "embed_reference_ms", "plain_vit_ms", "decode_ms", "swinunetr_forward_ms",
        "decode_over_swinunetr", "reference_over_fast", "fast_over_plain_vit", "peak_rss_mb",
        "peak_rss_mb_one_embedding", "peak_rss_mb_4_cached_embeddings", "embedding_mb"}


def test_bench_cli_reports_timings_memory_and_autocast_error(capsys, tmp_path):
    assert main(["bench", "--json", "--config", "tiny", "--repeats", "1", "--autocast", "bf16",
                 "--save", str(tmp_path)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["device"], report["gpu"]) == ("cpu", None) and report["torch"].startswith("2.")
    saved = list(tmp_path.glob("cpu_*.json"))  # --save: the same record, named after the machine
    assert len(saved) == 1 and json.loads(saved[0].read_text())["embed_ms"] == report["embed_ms"]
    assert KEYS <= set(report)
    assert report["device"] == "cpu" and report["input"] in ("head_ct 64^3", "lung2 64^3")
    for key in KEYS:
        assert report[key] > 0
    assert report["decode_over_swinunetr"] == pytest.approx(report["decode_ms"] / report["swinunetr_forward_ms"], rel=0.01)
    assert report["reference_over_fast"] == pytest.approx(report["embed_reference_ms"] / report["embed_ms"], rel=0.01)
    assert report["embed_reference_max_abs_diff"] < 1e-4
    assert 0 < report["embed_bf16_max_rel_error"] < 0.1  # bf16 keeps ~3 significant digits
    assert report["peak_rss_mb_one_embedding"] <= report["peak_rss_mb_4_cached_embeddings"] <= report["peak_rss_mb"]
    assert report["embedding_mb"] == pytest.approx(96 * 8 ** 3 * 4 / 2 ** 20, rel=1e-3)


def test_bench_rejects_bad_arguments(capsys):
    assert main(["bench", "--config", "tiny", "--repeats", "0"]) == 2
    assert "repeats must be at least 1" in capsys.readouterr().err


def test_bench_input_is_a_lung2_crop_where_the_head_ct_is_missing(monkeypatch, tmp_path):
    """The head CT comes from a Debian package and cannot be fetched: bench uses the lung2 CT then."""
    (tmp_path / "pyradiomics").mkdir()
    (tmp_path / "pyradiomics" / "lung2_image.nrrd").symlink_to(data.example("pyradiomics/lung2_image.nrrd"))
    monkeypatch.setattr(data, "search_dirs", lambda: [tmp_path])
    assert data.find_example("invesalius_head_ct/head_ct.nrrd") is None
    array, name = bench_input(32)
    assert name == "lung2" and array.shape == (32, 32, 32)
    assert array.std() > 0.1  # real tissue contrast, not a constant


def test_training_step_part_on_the_cpu():
    from rtsam.bench_gpu import bench_train_step

    report = bench_train_step("tiny", "cpu", 1, batch=1, iterations=1, clicks=2)
    assert report["train_step_ms"] > report["click_simulation_ms"] > 0 and report["amp"] is False


def test_sam3_part_times_batches_of_slices():
    from sam3_helpers import tiny_sam3_config

    from rtsam.bench_gpu import bench_sam3

    report = bench_sam3("cpu", 1, config=tiny_sam3_config())
    assert report["per_slice_ms_batch1"] > 0 and report["per_slice_ms_batch8"] > 0
    assert report["source"] == "random weights, given config" and report["image_size"] == 56
