"""Fine-tuning the tiny sam3d on crops of a real case (pyradiomics brain1)."""

import json

import pytest
import torch

from rtsam.cli import main
from rtsam.engines.sam3d.checkpoint import load_checkpoint
from rtsam.engines.sam3d.config import Sam3DConfig
from rtsam.engines.sam3d.model import Sam3D
from rtsam.train.dataset import CropDataset, prepare_case
from rtsam.train.loop import TrainOptions, train
from rtsam.train.manifest import validate

TASK = "Segment the enhancing tumour"


@pytest.fixture(scope="module")
def brain1(data, tmp_path_factory):
    folder = tmp_path_factory.mktemp("brain1")
    for name in ("image", "label"):
        (folder / f"brain1_{name}.nrrd").symlink_to(data / "pyradiomics" / f"brain1_{name}.nrrd")
    return folder


def _box_baseline(folder) -> float:
    """Dice of filling the prompt box: what a model that only copies the box achieves."""
    item = CropDataset([prepare_case(validate(folder, TASK).cases[0], 1.5, 64)], 64, train=False)[0]
    lo, hi = item["box"].long()
    box = torch.zeros_like(item["label"][0])
    box[lo[0]:hi[0] + 1, lo[1]:hi[1] + 1, lo[2]:hi[2] + 1] = 1
    label = item["label"][0]
    return float(2 * (box * label).sum() / (box.sum() + label.sum()))


def test_tiny_model_learns_a_real_lesion_and_resumes(brain1, tmp_path):
    """40 steps (4 epochs x 10 crops, lr 1e-3, text + box prompts) from scratch: validation Dice
    0.63 measured (0.04, 0.24, 0.55, 0.63 per epoch), against 0.23 for filling the box and 0.04
    for all-foreground."""
    baseline = _box_baseline(brain1)
    assert 0.15 < baseline < 0.3
    out = tmp_path / "run"
    options = TrainOptions(manifest=str(brain1), out=str(out), config="tiny", epochs=4, lr=1e-3, task=TASK,
                           iterations=0, crops_per_case=10, device="cpu", patience=0, augment=False)
    summary = train(options)
    dice = [r["val_dice"] for r in summary["history"]]
    assert summary["best_val_dice"] > baseline + 0.2, dice
    assert dice[-1] > dice[0] + 0.2

    # log: one JSON line per epoch; best.pth: a plain checkpoint with config, manifest hash, tasks
    lines = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == [1, 2, 3, 4]
    saved = torch.load(out / "best.pth", weights_only=True)
    assert saved["manifest_sha256"] == summary["manifest_sha256"] and saved["tasks"] == [TASK]
    assert saved["sam3d_config"]["img_size"] == 64 and saved["val_dice"] == pytest.approx(summary["best_val_dice"])
    report = load_checkpoint(Sam3D(Sam3DConfig.tiny()), out / "best.pth")
    assert report.ok and report.prompts == ["clicks", "box", "text"]  # rtsam train marks its branches trained

    # resume for one more epoch: continues from epoch 4, keeps the history
    resumed = train(TrainOptions(**{**options.__dict__, "epochs": 5, "crops_per_case": 2, "resume": True}))
    assert resumed["epochs_run"] == 5 and len(resumed["history"]) == 5
    assert resumed["history"][4]["val_dice"] > baseline


@pytest.mark.parametrize("mode", ["decoder", "lora"])
def test_partial_training_changes_only_its_parts(brain1, tmp_path, mode):
    out = tmp_path / mode
    train(TrainOptions(manifest=str(brain1), out=str(out), config="tiny", epochs=1, lr=1e-3, task=TASK,
                       train=mode, lora_rank=2, iterations=1, clicks=2, device="cpu", seed=3))
    torch.manual_seed(3)
    initial = Sam3D(Sam3DConfig.tiny()).state_dict()
    trained = torch.load(out / "best.pth", weights_only=True)["model_state_dict"]
    assert set(trained) == set(initial)  # LoRA merged back into plain qkv weights
    changed = {k for k in initial if not torch.equal(initial[k], trained[k])}
    encoder_changed = {k for k in changed if k.startswith("image_encoder.")}
    assert any(k.startswith("mask_decoder.") for k in changed)
    assert any(k.startswith("prompt_encoder.text_adapter.") for k in changed)
    if mode == "decoder":
        assert not encoder_changed
    else:
        assert encoder_changed and all(k.endswith("attn.qkv.weight") for k in encoder_changed)


def test_cli_refuses_bad_manifest_with_row_numbers(data, tmp_path, capsys):
    manifest = tmp_path / "m.csv"
    r = data / "pyradiomics"
    manifest.write_text(f"image,label,task\n{r}/brain1_image.nrrd,{r}/brain2_label.nrrd,{TASK}\n"
                        f"{r}/gone.nrrd,{r}/brain1_label.nrrd,{TASK}\n")
    assert main(["train", str(manifest), "--out", str(tmp_path / "o"), "--config", "tiny", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert len([ln for ln in err.splitlines() if "error" in ln]) == 1 and "2 of 2 manifest rows are unusable" in err
    assert "row 1" in err and "does not match image grid" in err and "row 2" in err and "not found" in err


def test_resume_refuses_changed_data(brain1, tmp_path, data):
    out = tmp_path / "o"
    options = TrainOptions(manifest=str(brain1), out=str(out), config="tiny", epochs=1, task=TASK, iterations=0,
                           device="cpu", train="decoder")
    train(options)
    other = tmp_path / "other"
    other.mkdir()
    for name in ("image", "label"):
        (other / f"breast1_{name}.nrrd").symlink_to(data / "pyradiomics" / f"breast1_{name}.nrrd")
    with pytest.raises(Exception, match="manifest's data changed"):
        train(TrainOptions(**{**options.__dict__, "manifest": str(other), "epochs": 2, "resume": True}))
