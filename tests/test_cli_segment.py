import json

import numpy as np
import pytest

from rtsam.cli import main
from rtsam.io import read_image, write_image
from rtsam.prompts.clicks import next_clicks
from rtsam.volume import Volume


@pytest.fixture(scope="module")
def files(data, tmp_path_factory):
    folder = tmp_path_factory.mktemp("seg")
    crop = {}
    for name in ("image", "label"):
        v = read_image(data / f"pyradiomics/brain2_{name}.nrrd")
        crop[name] = Volume(v.array[8:11], v.spacing, tuple(v.ijk_to_lps([0, 0, 8])), v.direction)
        write_image(crop[name], folder / f"{name}.nrrd")
    return folder, crop


def box_args(label: Volume) -> list[str]:
    kji = np.argwhere(label.array > 0)
    lps = label.ijk_to_lps(np.stack([kji.min(0), kji.max(0)])[:, ::-1])
    return [f"{v:.2f}" for v in np.concatenate([lps.min(0) - 5, lps.max(0) + 5])]


def test_segment_writes_mask_and_json(files, capsys):
    folder, crop = files
    out = folder / "mask.nrrd"
    truth = crop["label"].array > 0
    centre = next_clicks(np.zeros_like(truth), truth)[0].to_click(crop["label"]).lps
    code = main(["segment", str(folder / "image.nrrd"), "--out", str(out), "--box", *box_args(crop["label"]),
                 "--click", *[f"{v:.2f}" for v in centre], "pos", "--json"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    mask = read_image(out)
    assert mask.same_grid(crop["image"]) and set(np.unique(mask.array)) <= {0, 1}
    assert summary["engine"] == "litemedsam" and summary["weights"].startswith("lite_medsam.pth@sha256:")
    assert summary["volume_ml"] == pytest.approx(mask.array.sum() * mask.voxel_volume_ml, abs=1e-3)
    assert summary["out"] == str(out)
    assert (summary["device"], summary["gpu"]) == ("cpu", None)  # --device auto on a machine without CUDA
    assert summary["low_quality"] == (summary["quality"] < 0.5)
    assert 2 * (mask.array.astype(bool) & truth).sum() / (mask.array.sum() + truth.sum()) > 0.3


def test_benchmark_interactive_json(files, capsys):
    folder, _ = files
    code = main(["benchmark", "interactive", "--image", str(folder / "image.nrrd"), "--label",
                 str(folder / "label.nrrd"), "--clicks", "1", "--json"])
    report = json.loads(capsys.readouterr().out)
    steps = report["steps"]
    assert (report["device"], report["gpu"]) == ("cpu", None)
    assert code == 0 and [s["step"] for s in steps] == ["box", "click 1"]
    assert all(0 <= s["dice"] <= 1 for s in steps)


@pytest.mark.parametrize("extra, message", [
    (["--box", "0", "0", "0", "0", "5", "5"], "zero size"),
    (["--box", "1e4", "1e4", "1e4", "2e4", "2e4", "2e4"], "does not overlap"),
    (["--box", "0", "0", "0", "5", "5", "5", "--click", "1e4", "0", "0", "pos"], "outside the image"),
    (["--box", "0", "0", "0", "5", "5", "5", "--click", "1", "2", "3", "maybe"], "'pos' or 'neg'"),
    (["--engine", "nope"], "unknown engine"),
])
def test_bad_input_exits_2(files, capsys, extra, message):
    folder, _ = files
    code = main(["segment", str(folder / "image.nrrd"), "--out", str(folder / "x.nrrd"), *extra])
    assert code == 2 and message in capsys.readouterr().err


def test_non_finite_and_2d_images(files, tmp_path, capsys):
    folder, crop = files
    bad = crop["image"].with_array(crop["image"].array.astype(np.float32))
    bad.array[1, 5, 5] = np.nan
    write_image(bad, tmp_path / "nan.nrrd")
    flat = Volume(crop["image"].array[:1], crop["image"].spacing, crop["image"].origin)
    write_image(flat, tmp_path / "flat.nrrd")
    for name, message in (("nan.nrrd", "non-finite"), ("flat.nrrd", "3D")):
        code = main(["segment", str(tmp_path / name), "--out", str(tmp_path / "m.nrrd"), "--box", *box_args(crop["label"])])
        assert code == 2 and message in capsys.readouterr().err


def test_ct_window_option(data, tmp_path, capsys):
    """--ct-window fixes litemedsam's CT window (2 slices of the real lung2 tumour)."""
    from rtsam.engines.litemedsam_prep import CT_WINDOWS

    paths = {}
    for name in ("image", "label"):
        v = read_image(data / f"pyradiomics/lung2_{name}.nrrd")
        paths[name] = write_image(Volume(v.array[19:21], v.spacing, tuple(v.ijk_to_lps([0, 0, 19])), v.direction),
                                  tmp_path / f"{name}.nrrd")
    label = read_image(paths["label"])
    dice = {}
    for window in CT_WINDOWS:  # every window the engine knows is a CLI choice
        code = main(["benchmark", "interactive", "--image", str(paths["image"]), "--label", str(paths["label"]),
                     "--clicks", "0", "--ct-window", window, "--json"])
        assert code == 0
        dice[window] = json.loads(capsys.readouterr().out)["steps"][0]["dice"]
    assert dice["lung"] > dice["soft-tissue"]
    code = main(["segment", str(paths["image"]), "--out", str(tmp_path / "m.nrrd"), "--box", *box_args(label),
                 "--engine", "sam3d-tiny", "--ct-window", "lung"])
    assert code == 2 and "unknown sam3d options: ct_window" in capsys.readouterr().err


def test_presence_option(data, tmp_path, capsys):
    """--presence on runs litemedsam with its opt-in rule: brain1's first component (slices 11-12) in a
    10 mm box leaves margin slices 10 and 13 empty, which --presence off paints."""
    from scipy import ndimage

    image = read_image(data / "pyradiomics/brain1_image.nrrd")
    components, _ = ndimage.label(read_image(data / "pyradiomics/brain1_label.nrrd").array > 0)
    label = write_image(image.with_array((components == 1).astype(np.uint8)), tmp_path / "label.nrrd")
    empty = {}
    for presence in ("off", "on"):
        code = main(["benchmark", "interactive", "--image", str(data / "pyradiomics/brain1_image.nrrd"),
                     "--label", str(label), "--margin-mm", "10", "--clicks", "0", "--presence", presence, "--json"])
        assert code == 0
        report = json.loads(capsys.readouterr().out)
        assert report["presence"] == presence and report["zoom"] is None  # the report says which setting it measured
        empty[presence] = report["margin_slices"]
    assert empty == {"off": {"count": 2, "empty": 0}, "on": {"count": 2, "empty": 2}}


def test_serve_takes_the_litemedsam_options():
    """rtsam serve passes --ct-window and --presence to its engine like segment does."""
    from rtsam.cli import build_parser
    from rtsam.cli.serve import server_config
    from rtsam.engines.litemedsam import PRESENCE_RULE

    args = build_parser().parse_args(["serve", "--ct-window", "lung", "--presence", "on"])
    assert server_config(args, []).engine_options == {"ct_window": "lung", "presence": PRESENCE_RULE}
    assert server_config(build_parser().parse_args(["serve"]), []).engine_options == {}


def test_zoom_option_builds_the_engine_rule():
    """--zoom-below-px gives segment and benchmark's litemedsam an opt-in ZoomRule; without it the engine has none."""
    from rtsam.cli import build_parser
    from rtsam.cli.common import engine_options
    from rtsam.engines.litemedsam_prep import ZoomRule

    for command in (["segment", "i.nrrd", "--out", "o.nrrd"], ["benchmark", "interactive", "--image", "i.nrrd"]):
        args = build_parser().parse_args([*command, "--zoom-below-px", "20"])
        assert engine_options(args) == {"zoom": ZoomRule(below_px=20.0, by_quality=True, ct_only=True)}
        assert "zoom" not in engine_options(build_parser().parse_args(command))
