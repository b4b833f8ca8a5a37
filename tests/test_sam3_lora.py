"""LoRA on SAM 3, training with hard-negative mining, and ``rtsam train-itv``, on a tiny SAM 3."""

import json

import numpy as np
import pytest
import torch
from sam3_helpers import crop, one_thread, tiny_dir  # noqa: F401 (fixtures)
from torch import nn

from rtsam.cli import main
from rtsam.engines.base import Prompt
from rtsam.engines.registry import file_sha256, load_engine
from rtsam.engines.sam3_model import load_sam3
from rtsam.errors import InputError
from rtsam.io import write_image
from rtsam.train.sam3_itv import ITVTrainer, ITVTrainOptions, pick_hard_negatives, train_itv
from rtsam.train.sam3_lora import DEFAULT_TARGETS, add_lora, resolve_targets


def options(tiny_dir, out, **kwargs) -> ITVTrainOptions:
    defaults = dict(rank=4, alpha=8.0, dropout=0.0, lr=1e-2, batch_size=4, hard_negatives=3, score_threshold=0.2,
                    device="cpu")
    return ITVTrainOptions(base=str(tiny_dir), task="tumour", out=str(out), **{**defaults, **kwargs})


def test_default_targets_are_separate_linear_projections(tiny_dir):
    model = load_sam3(tiny_dir).model
    assert not any(isinstance(m, nn.MultiheadAttention) for m in model.modules())  # no fused attention left
    names = resolve_targets(model, DEFAULT_TARGETS)
    modules = dict(model.named_modules())
    assert all(isinstance(modules[n], nn.Linear) for n in names)
    assert {n.rsplit(".", 1)[1] for n in names} == {"q_proj", "v_proj"}
    assert {n.split(".")[0] for n in names} == {"vision_encoder", "detr_encoder", "detr_decoder"}
    # 2 ViT layers + 1 DETR encoder layer (self, cross) + 1 decoder layer (self, text, vision): 2 projections each
    assert len(names) == 2 * (2 + 2 + 3)
    assert "text_encoder.text_model.encoder.layers.0.self_attn.q_proj" in resolve_targets(model, ["q_proj"])
    with pytest.raises(InputError, match="matches no linear layer"):
        resolve_targets(model, ["qkv"])
    with pytest.raises(InputError, match="rank must be at least 1"):
        add_lora(model, rank=0)


def test_only_lora_parameters_train(tiny_dir):
    model = add_lora(load_sam3(tiny_dir).model, rank=4, alpha=8.0)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(".lora_A." in n or ".lora_B." in n for n in trainable)
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == 14 * 4 * (32 + 32)


def test_adapter_round_trip_and_base_unchanged(tiny_dir, crop, tmp_path):
    base_hash = file_sha256(str(tiny_dir / "model.safetensors"))
    trainer = ITVTrainer([crop], options(tiny_dir, tmp_path / "adapter"))
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if not p.requires_grad}
    trainer.epoch(trainer.slices.positives)
    trainer.epoch(trainer.slices.positives)
    after = dict(trainer.model.named_parameters())
    assert all(torch.equal(before[n], after[n]) for n in before)  # only the adapters moved
    assert any(float(p.detach().abs().max()) > 0 for n, p in after.items() if ".lora_B." in n)
    trainer.model.save_pretrained(str(tmp_path / "adapter"))
    keys = trainer.slices.positives[:2]
    trainer.model.eval()
    with torch.no_grad():
        trained = trainer.forward(keys).pred_masks
    reloaded = load_sam3(tmp_path / "adapter")  # the base comes from adapter_config.json
    with torch.no_grad():
        out = reloaded.model(pixel_values=trainer.slices.pixels(keys, reloaded.processor),
                             input_ids=trainer.tokens["input_ids"].expand(2, -1),
                             attention_mask=trainer.tokens["attention_mask"].expand(2, -1)).pred_masks
    torch.testing.assert_close(out, trained, rtol=0, atol=1e-6)
    plain = load_sam3(tiny_dir).model
    with torch.no_grad():
        untouched = plain(pixel_values=trainer.slices.pixels(keys, reloaded.processor),
                          input_ids=trainer.tokens["input_ids"].expand(2, -1),
                          attention_mask=trainer.tokens["attention_mask"].expand(2, -1)).pred_masks
    assert not torch.allclose(untouched, trained)
    assert file_sha256.__wrapped__(str(tiny_dir / "model.safetensors")) == base_hash
    assert reloaded.label.startswith("tiny-sam3@sha256:") and "+adapter@sha256:" in reloaded.label


def test_hard_negatives_are_the_negative_slices_the_engine_fires_on(tiny_dir, crop, tmp_path):
    image, label = crop
    engine = load_engine("sam3", checkpoint=tiny_dir, score_threshold=0.2)
    covered = engine.open(image).predict(Prompt(task="tumour")).mask.array.mean(axis=(1, 2))
    negatives = [k for k in range(label.array.shape[0]) if not label.array[k].any()]
    fire = float(np.median(covered[negatives]))  # about half the negative slices fire above this
    expected = sorted((k for k in negatives if covered[k] > fire), key=lambda k: -covered[k])[:2]
    trainer = ITVTrainer([crop], options(tiny_dir, tmp_path / "x", hard_negatives=2, fire_fraction=fire))
    hard, fired = trainer.mine()
    assert [k for _, k in hard] == expected and len(expected) == 2
    assert fired == sum(covered[k] > fire for k in negatives) < len(negatives)
    assert pick_hard_negatives({(0, 1): 0.3, (0, 2): 0.0, (0, 3): 0.5}, 5, 0.1) == [(0, 3), (0, 1)]


def test_training_reduces_the_loss(tiny_dir, crop, tmp_path):
    summary = train_itv([crop], options(tiny_dir, tmp_path / "adapter", epochs=4))
    assert summary["final_loss"] < summary["initial_loss"]
    assert [h["epoch"] for h in summary["history"]] == [1, 2, 3, 4]
    assert all(0 <= h["hard_negatives"] <= 3 for h in summary["history"])
    assert summary["hard_negatives_mined"] == sum(h["hard_negatives"] for h in summary["history"])
    assert summary["positive_slices"] == 7 and summary["negative_slices"] == 6
    assert json.loads((tmp_path / "adapter" / "training.json").read_text())["final_loss"] == summary["final_loss"]


def test_train_itv_cli_end_to_end(tiny_dir, crop, tmp_path, capsys):
    image = write_image(crop[0], tmp_path / "image.nrrd")
    label = write_image(crop[1], tmp_path / "label.nrrd")
    out = tmp_path / "adapter"
    assert main(["train-itv", str(image), str(label), "--base", str(tiny_dir), "--task", "tumour", "--out", str(out),
                 "--rank", "2", "--targets", "detr_*.[qv]_proj", "--epochs", "2", "--hard-negatives", "2",
                 "--device", "cpu", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert {"adapter_config.json", "adapter_model.safetensors", "training.json"} <= {p.name for p in out.iterdir()}
    assert summary["parameters"]["trainable"] == 10 * 2 * (32 + 32) and len(summary["history"]) == 2
    assert json.loads((out / "adapter_config.json").read_text())["base_model_name_or_path"] == str(tiny_dir.resolve())
    result = load_engine("sam3", checkpoint=out, score_threshold=0.0).segment(crop[0], Prompt(task="tumour"))
    assert result.mask.same_grid(crop[0]) and "+adapter@sha256:" in result.weights
    config = json.loads((out / "adapter_config.json").read_text())
    (out / "adapter_config.json").write_text(json.dumps({**config, "base_model_name_or_path": str(tmp_path / "gone")}))
    with pytest.raises(InputError, match="base SAM 3 folder .*gone.* is not there"):
        load_engine("sam3", checkpoint=out)
    assert load_engine("sam3", checkpoint=out, base=tiny_dir).weights_label == result.weights


def test_train_itv_cli_bad_inputs(tiny_dir, crop, tmp_path, capsys):
    image = write_image(crop[0], tmp_path / "image.nrrd")
    label = write_image(crop[1], tmp_path / "label.nrrd")
    empty = write_image(crop[1].with_array(np.zeros_like(crop[1].array)), tmp_path / "empty.nrrd")
    bert = tmp_path / "bert"
    bert.mkdir()
    (bert / "config.json").write_text(json.dumps({"model_type": "bert"}))
    common = ["--task", "tumour", "--out", str(tmp_path / "out")]
    cases = [
        ([str(image), str(label), "--base", str(tmp_path / "missing")], "SAM 3 folder not found", "missing"),
        ([str(image), str(label), "--base", str(bert)], "not a SAM 3 model", "config.json"),
        ([str(image), str(empty), "--base", str(tiny_dir)], "label is empty", "empty.nrrd"),
        ([str(image), "--base", str(tiny_dir)], "manifest", "image.nrrd"),
        ([str(image), str(label), str(image), "--base", str(tiny_dir)], "IMAGE LABEL pairs", "3 paths"),
    ]
    for args, message, path in cases:
        assert main(["train-itv", *args, *common]) == 2
        err = capsys.readouterr().err
        assert message in err and path in err, err
