"""``rtsam demo`` end to end on the default engine: the outputs' content, not only their presence."""

import contextlib
import io
import json

import numpy as np
import pytest

from rtsam.cli import main
from rtsam.demo.overlay import COLOURS
from rtsam.io import read_image
from rtsam.metrics import dice

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo(tmp_path_factory, data):
    out = tmp_path_factory.mktemp("demo") / "rtsam-demo"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["demo", "--out", str(out)]) == 0
    return out, json.loads((out / "summary.json").read_text()), printed.getvalue()


def colours_in(path) -> set:
    from PIL import Image

    with Image.open(path) as picture:
        assert picture.format == "PNG" and picture.mode == "RGB" and min(picture.size) >= 100
        pixels = np.asarray(picture).reshape(-1, 3)
    return {name for name, rgb in COLOURS.items() if (pixels == rgb).all(axis=1).any()}


def test_every_listed_file_exists_and_every_png_shows_its_outlines(demo):
    out, summary, _ = demo
    files = [f for part in ("a_breast_rt", "b_brain_interactive", "c_lung_4dct_itv") for f in summary[part]["files"]]
    assert sum(f.endswith(".png") for f in files) == 1 + 4 + 5
    for name in files:
        assert (out / name).is_file(), name
        if name.endswith(".png"):
            assert {"truth", "mask"} <= colours_in(out / name), name
    assert "box" in colours_in(out / "a_breast_rt" / "dose_box.png")
    assert "box" in colours_in(out / "b_brain_interactive" / "step0_box.png")
    for n, step in enumerate(summary["b_brain_interactive"]["steps"][1:], start=1):
        kind = "positive" if step["positive"] else "negative"
        assert kind in colours_in(out / "b_brain_interactive" / f"step{n}_click{n}.png")
    assert not list(out.rglob(".*"))  # no temporary files left


def test_dose_box_and_dvh_against_the_planning_system(demo):
    _, summary, _ = demo
    breast = summary["a_breast_rt"]
    assert breast["dose_box"]["dmax_gy"] == pytest.approx(14.7, abs=0.1)
    assert breast["dose_box"]["threshold_gy"] == pytest.approx(0.8 * breast["dose_box"]["dmax_gy"], rel=1e-3)
    assert breast["target_in_box"] > 0.9  # the tumour bed lies in the 0.8 x Dmax box
    assert len(breast["dvh"]) == 9
    for row in breast["dvh"]:
        if row["tps_volume_cc"] > 10 and row["structure"] != "BODY":
            assert abs(row["mean_diff_percent"]) < 1.0, row


def test_interactive_dice_per_step_matches_the_written_masks(demo, data):
    out, summary, _ = demo
    brain = summary["b_brain_interactive"]
    assert brain["engine"] == "litemedsam"
    assert [s["step"] for s in brain["steps"]] == ["box", "click 1", "click 2", "click 3"]
    dices = [s["dice"] for s in brain["steps"]]
    assert 0.3 < dices[0] < 0.95 and dices[-1] >= dices[0] and max(dices) < 1
    label = read_image(data / "pyradiomics" / "brain2_label.nrrd")
    for n, step in enumerate(brain["steps"]):
        mask = read_image(out / "b_brain_interactive" / f"step{n}_{step['step'].replace(' ', '')}_mask.nrrd")
        assert mask.same_grid(label)
        assert dice(mask, label) == pytest.approx(step["dice"], abs=1e-3)


def test_itv_of_the_synthetic_4dct(demo):
    out, summary, _ = demo
    lung = summary["c_lung_4dct_itv"]
    assert lung["phases"] == 4 and len(lung["per_phase"]) == 4
    assert all(row["dice"] > 0.6 for row in lung["per_phase"])
    folder = out / "c_lung_4dct_itv"
    itv, truth = read_image(folder / "itv_mask.nrrd"), read_image(folder / "truth_itv.nrrd")
    union = np.any([read_image(folder / f"phase{n}_mask.nrrd").array > 0 for n in range(4)], axis=0)
    assert np.array_equal(itv.array > 0, union)
    assert dice(itv, truth) == pytest.approx(lung["itv_dice"], abs=1e-3) and lung["itv_dice"] > 0.7
    assert lung["itv_ml"] >= max(0.0, lung["truth_itv_ml"] * 0.5)


def test_summary_markdown_and_printed_table(demo):
    out, summary, printed = demo
    markdown = (out / "summary.md").read_text()
    for step in summary["b_brain_interactive"]["steps"]:
        assert f"{step['dice']:.3f}" in markdown and f"{step['dice']:.3f}" in printed
    assert f"{summary['c_lung_4dct_itv']['itv_dice']:.3f}" in printed
    assert markdown.count("| Tumor Bed |") == 1 and "ITV" in printed


def test_demo_into_an_unwritable_folder_is_one_line(tmp_path, capsys):
    (tmp_path / "a_file").write_text("")
    assert main(["demo", "--out", str(tmp_path / "a_file" / "demo")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("rtsam demo: error:") and "cannot create the output folder" in err
    assert len(err.splitlines()) == 1
