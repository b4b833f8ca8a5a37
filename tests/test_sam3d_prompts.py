"""sam3d decodes as SAM-Med3D's pipeline does (zero mask on the first decode) and never feeds prompts
to branches its weights did not train (SAM-Med3D's released and training checkpoint formats)."""

import argparse

import numpy as np
import pytest
import torch

from rtsam.engines.base import Click, Prompt
from rtsam.engines.registry import load_engine
from rtsam.engines.sam3d.checkpoint import TRAINED_MARK, load_checkpoint, save_checkpoint
from rtsam.engines.sam3d.config import Sam3DConfig
from rtsam.engines.sam3d.model import Sam3D
from rtsam.engines.sam3d.prompt_encoder import NEW_BRANCHES
from rtsam.train.losses import SmallTargetFocusLoss
from rtsam.train.prompting import ProgressiveStep, PromptSchedule
from rtsam.volume import Volume

BOX = np.array([[15.0, 15.0, 15.0], [45.0, 45.0, 45.0]])


@pytest.fixture(scope="module")
def image():
    return Volume(np.random.default_rng(0).normal(size=(40, 40, 40)).astype(np.float32), (1.5, 1.5, 1.5))


@pytest.fixture(scope="module")
def trained_model():
    """A tiny model whose every weight, box and text branches included, is non-trivial."""
    torch.manual_seed(5)
    model = Sam3D(Sam3DConfig.tiny()).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.startswith(NEW_BRANCHES):
                torch.nn.init.normal_(param, std=0.5)
    return model


def sam_med3d_state(model: Sam3D) -> dict:
    """SAM-Med3D's key set only: rtsam's box and text branches dropped."""
    return {k: v for k, v in model.state_dict().items() if not k.startswith(NEW_BRANCHES)}


@pytest.fixture(scope="module")
def released(trained_model, tmp_path_factory):
    """``sam_med3d_turbo.pth``'s format: ``{"model_state_dict": ...}``."""
    path = tmp_path_factory.mktemp("ckpt") / "sam_med3d_turbo.pth"
    torch.save({"model_state_dict": sam_med3d_state(trained_model)}, path)
    return path


@pytest.fixture(scope="module")
def training_style(trained_model, tmp_path_factory):
    """SAM-Med3D's ``train.py`` checkpoints: DataParallel ``module.`` keys, optimizer and scheduler state, args."""
    state = sam_med3d_state(trained_model)
    params = [torch.nn.Parameter(v.clone()) for v in state.values() if v.is_floating_point()]
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    sum(p.sum() for p in params).backward()
    optimizer.step()
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, [120, 180])
    path = tmp_path_factory.mktemp("ckpt") / "sam_model_latest.pth"
    torch.save({"epoch": 12, "model_state_dict": {f"module.{k}": v for k, v in state.items()},
                "optimizer_state_dict": optimizer.state_dict(), "lr_scheduler_state_dict": scheduler.state_dict(),
                "losses": [0.5, 0.4], "dices": [np.float64(0.7)], "best_loss": 0.4, "best_dice": np.float64(0.7),
                "args": argparse.Namespace(img_size=64, multi_click=True), "used_datas": ["a", "b"]}, path)
    return path


class DecoderInputs:
    """Records what the prompt encoder receives and the dense prompt the mask decoder gets."""

    def __init__(self, model: Sam3D):
        self.prompts, self.dense = [], []
        self.handles = [
            model.prompt_encoder.register_forward_hook(lambda m, a, kw, out: self.prompts.append(kw), with_kwargs=True),
            model.mask_decoder.register_forward_pre_hook(lambda m, args: self.dense.append(args[3].detach().clone())),
        ]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for handle in self.handles:
            handle.remove()


def zero_mask_prompt(model: Sam3D, batch: int = 1) -> torch.Tensor:
    with torch.no_grad():
        return model.prompt_encoder.mask_downscaling(torch.zeros(batch, 1, *(model.config.low_res_size,) * 3))


def test_first_click_dense_prompt_is_mask_downscaling_of_zeros(image):
    engine = load_engine("sam3d-tiny")
    model, context = engine.model, engine.open(image)
    centre = tuple(BOX.mean(0))
    with DecoderInputs(model) as seen:
        first = context.predict(Prompt(clicks=[Click(centre)]))
        second = context.predict(Prompt(clicks=[Click(centre), Click((20.0, 20.0, 20.0), False)]), previous=first)
    expected = zero_mask_prompt(model)
    assert torch.allclose(seen.dense[0], expected, atol=1e-6)
    no_mask = model.prompt_encoder.no_mask_embed.weight.reshape(1, -1, 1, 1, 1).expand_as(expected)
    assert not torch.allclose(seen.dense[0], no_mask, atol=1e-3)
    with torch.no_grad():  # then its own previous logits, as SAM-Med3D
        assert torch.allclose(seen.dense[1], model.prompt_encoder.mask_downscaling(first.state["low_res_logits"]),
                              atol=1e-6)
    assert second.state["crop_key"] == first.state["crop_key"]


def test_progressive_prompting_starts_from_a_zero_mask(data):
    torch.manual_seed(0)
    model = Sam3D(Sam3DConfig.tiny())
    step = ProgressiveStep(model, SmallTargetFocusLoss(), PromptSchedule(iterations=1, clicks=2),
                           encoder_trainable=False)
    label = torch.zeros(2, 1, 64, 64, 64)
    label[:, :, 20:40, 24:44, 28:48] = 1
    box = torch.tensor([[[18.0, 22.0, 26.0], [42.0, 46.0, 50.0]]]).repeat(2, 1, 1)
    with DecoderInputs(model) as seen, torch.no_grad():
        step(torch.randn(2, 1, 64, 64, 64), label, torch.ones_like(label), box, torch.randn(2, model.config.text_dim))
    assert len(seen.dense) == 2
    assert torch.allclose(seen.dense[0], zero_mask_prompt(model, 2), atol=1e-6)
    assert seen.prompts[1]["masks"].abs().sum() > 0  # the second decode gets the first one's logits


@pytest.mark.parametrize("fixture", ["released", "training_style"])
def test_sam_med3d_checkpoints_load_for_clicks_only(fixture, request, trained_model):
    path = request.getfixturevalue(fixture)
    fresh = Sam3D(Sam3DConfig.tiny())
    report = load_checkpoint(fresh, path, strict=True)
    assert report.ok and report.loaded == len(sam_med3d_state(trained_model))
    assert report.prompts == ["clicks"] and report.untrained == ["box", "text"]
    assert "trained prompts: clicks; box and text untrained (SAM-Med3D weights without rtsam's branches)" \
        in report.summary()
    key = "mask_decoder.iou_token.weight"
    assert torch.equal(fresh.state_dict()[key], trained_model.state_dict()[key])


def test_untrained_box_only_places_the_crop_and_text_is_ignored(released, image):
    engine = load_engine("sam3d-tiny", checkpoint=released)
    assert engine.trained_prompts == ["clicks"] and engine.load_report.untrained == ["box", "text"]
    context = engine.open(image)
    with DecoderInputs(engine.model) as seen:
        result = context.predict(Prompt(box_lps=BOX, task="segment the lung"))
        clicked = context.predict(Prompt(box_lps=BOX, clicks=[Click((20.0, 20.0, 20.0), False)]), previous=result)
    box_given, box_clicked = seen.prompts
    assert box_given["boxes"] is None and box_given["text_embeddings"] is None
    assert engine._text is None  # the text encoder was never even loaded
    centre = result.state["crop"].lps_to_dhw(BOX.mean(0))
    assert np.allclose(box_given["points"][0][0].numpy(), [centre])
    assert box_given["points"][1].tolist() == [[1]]
    assert box_clicked["points"][1].tolist() == [[1, 0]]  # the centre click stays first, as in SAM-Med3D
    assert result.state["crop"].spacing == 1.5 and np.allclose(centre, 32)  # crop centred on the box
    assert result.info["trained_prompts"] == ["clicks"]
    assert result.info["prompts_applied"]["box"].startswith("crop centre and extent only")
    assert result.info["prompts_applied"]["text"] == "ignored (untrained text branch)"
    assert clicked.info["prompts_applied"]["clicks"] == "model"
    assert result.summary()["info"] == result.info


def test_allow_untrained_prompts_feeds_the_box(released, image):
    engine = load_engine("sam3d-tiny", checkpoint=released, allow_untrained_prompts=True)
    with DecoderInputs(engine.model) as seen:
        result = engine.open(image).predict(Prompt(box_lps=BOX))
    assert seen.prompts[0]["boxes"] is not None and seen.prompts[0]["points"] is None
    assert result.info["prompts_applied"]["box"] == "model (untrained branch, --allow-untrained-prompts)"


def test_trained_mark_decides_which_branches_count(trained_model, tmp_path, image):
    marked = save_checkpoint(trained_model, tmp_path / "box.pth", trained_prompts=("box",))
    assert torch.load(marked, weights_only=True)[TRAINED_MARK] == ["box"]
    engine = load_engine("sam3d-tiny", checkpoint=marked)
    assert engine.trained_prompts == ["clicks", "box"] and "text untrained (not trained in this file)" \
        in engine.load_report.summary()
    with DecoderInputs(engine.model) as seen:
        result = engine.open(image).predict(Prompt(box_lps=BOX))
    assert seen.prompts[0]["boxes"] is not None and result.info["prompts_applied"] == {"box": "model"}
    unmarked = tmp_path / "legacy.pth"  # an rtsam file from before the mark: the branches it holds count
    torch.save({"model_state_dict": trained_model.state_dict()}, unmarked)
    assert load_checkpoint(Sam3D(Sam3DConfig.tiny()), unmarked).prompts == ["clicks", "box", "text"]
    with pytest.raises(ValueError, match="unknown prompt branches"):
        save_checkpoint(trained_model, tmp_path / "x.pth", trained_prompts=("points",))
