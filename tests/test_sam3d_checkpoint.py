"""SAM-Med3D checkpoint layout: exact key names and shapes, strict loading, readable reports."""

import argparse

import numpy as np
import pytest
import torch

from rtsam.engines.registry import load_engine
from rtsam.engines.sam3d.checkpoint import load_checkpoint, load_state_dict, save_checkpoint
from rtsam.engines.sam3d.config import Sam3DConfig
from rtsam.engines.sam3d.model import Sam3D
from rtsam.engines.sam3d.prompt_encoder import NEW_BRANCHES
from rtsam.errors import InputError


def _linear(shapes, name, n_out, n_in):
    shapes[f"{name}.weight"], shapes[f"{name}.bias"] = (n_out, n_in), (n_out,)


def sam_med3d_vit_b_shapes() -> dict[str, tuple]:
    """Key names and shapes of SAM-Med3D's ViT-B (``_build_sam3D_ori``: 128^3, patch 16, dim 768)."""
    s = {"image_encoder.pos_embed": (1, 8, 8, 8, 768)}
    s["image_encoder.patch_embed.proj.weight"], s["image_encoder.patch_embed.proj.bias"] = (768, 1, 16, 16, 16), (768,)
    for i in range(12):
        b = f"image_encoder.blocks.{i}."
        for norm in ("norm1", "norm2"):
            s[b + norm + ".weight"] = s[b + norm + ".bias"] = (768,)
        _linear(s, b + "attn.qkv", 2304, 768)
        _linear(s, b + "attn.proj", 768, 768)
        rel = 15 if i in (2, 5, 8, 11) else 27  # global 2*8-1, windowed 2*14-1
        for axis in "dhw":
            s[f"{b}attn.rel_pos_{axis}"] = (rel, 64)
        _linear(s, b + "mlp.lin1", 3072, 768)
        _linear(s, b + "mlp.lin2", 768, 3072)
    s["image_encoder.neck.0.weight"], s["image_encoder.neck.2.weight"] = (384, 768, 1, 1, 1), (384, 384, 3, 3, 3)
    for j in (1, 3):
        s[f"image_encoder.neck.{j}.weight"] = s[f"image_encoder.neck.{j}.bias"] = (384,)
    p = "prompt_encoder."
    s[p + "pe_layer.positional_encoding_gaussian_matrix"] = (3, 128)
    for name in ("point_embeddings.0", "point_embeddings.1", "not_a_point_embed", "no_mask_embed"):
        s[p + name + ".weight"] = (1, 384)
    for j, (shape, n) in {0: ((4, 1, 2, 2, 2), 4), 3: ((16, 4, 2, 2, 2), 16), 6: ((384, 16, 1, 1, 1), 384)}.items():
        s[f"{p}mask_downscaling.{j}.weight"], s[f"{p}mask_downscaling.{j}.bias"] = shape, (n,)
    for j, n in ((1, 4), (4, 16)):
        s[f"{p}mask_downscaling.{j}.weight"] = s[f"{p}mask_downscaling.{j}.bias"] = (n,)
    m = "mask_decoder."
    attn_names = ["cross_attn_token_to_image", "cross_attn_image_to_token"]
    blocks = [f"{m}transformer.layers.{i}." for i in range(2)]
    for prefix, width in [(b + "self_attn", 384) for b in blocks] + \
            [(b + a, 192) for b in blocks for a in attn_names] + [(m + "transformer.final_attn_token_to_image", 192)]:
        for proj in ("q_proj", "k_proj", "v_proj"):
            _linear(s, f"{prefix}.{proj}", width, 384)
        _linear(s, f"{prefix}.out_proj", 384, width)
    for b in blocks:
        for j in range(1, 5):
            s[f"{b}norm{j}.weight"] = s[f"{b}norm{j}.bias"] = (384,)
        _linear(s, b + "mlp.lin1", 2048, 384)
        _linear(s, b + "mlp.lin2", 384, 2048)
    s[m + "transformer.norm_final_attn.weight"] = s[m + "transformer.norm_final_attn.bias"] = (384,)
    s[m + "iou_token.weight"], s[m + "mask_tokens.weight"] = (1, 384), (4, 384)
    s[m + "output_upscaling.0.weight"], s[m + "output_upscaling.0.bias"] = (384, 96, 2, 2, 2), (96,)
    s[m + "output_upscaling.1.weight"] = s[m + "output_upscaling.1.bias"] = (96,)
    s[m + "output_upscaling.3.weight"], s[m + "output_upscaling.3.bias"] = (96, 48, 2, 2, 2), (48,)
    for k in range(4):
        for j, (n_out, n_in) in enumerate([(384, 384), (384, 384), (48, 384)]):
            _linear(s, f"{m}output_hypernetworks_mlps.{k}.layers.{j}", n_out, n_in)
    for j, (n_out, n_in) in enumerate([(256, 384), (256, 256), (4, 256)]):
        _linear(s, f"{m}iou_prediction_head.layers.{j}", n_out, n_in)
    return s


def test_vit_b_loads_sam_med3d_state_dict_strictly():
    shapes = sam_med3d_vit_b_shapes()
    state = {k: torch.full(shape, float(i % 97) / 97) for i, (k, shape) in enumerate(shapes.items())}
    model = Sam3D(Sam3DConfig.vit_b())
    own = model.state_dict()
    assert {k for k in own if not k.startswith(NEW_BRANCHES)} == set(shapes)
    report = load_state_dict(model, state, "sam_med3d_turbo.pth", strict=True)
    assert report.ok and report.loaded == len(shapes)
    assert {k.split(".")[1] for k in report.initialised} == {"box_embeddings", "text_adapter"}
    assert "new branches initialised: prompt_encoder.box_embeddings, prompt_encoder.text_adapter" in report.summary()
    loaded = model.state_dict()
    for key in ("image_encoder.blocks.2.attn.rel_pos_d", "image_encoder.blocks.3.attn.qkv.weight",
                "prompt_encoder.pe_layer.positional_encoding_gaussian_matrix",
                "mask_decoder.output_hypernetworks_mlps.3.layers.2.weight"):
        assert torch.equal(loaded[key], state[key])
    positive = state["prompt_encoder.point_embeddings.1.weight"]
    assert torch.equal(loaded["prompt_encoder.box_embeddings.weight"], positive.expand(2, -1))
    assert torch.count_nonzero(loaded["prompt_encoder.text_adapter.2.weight"]) == 0


@pytest.fixture
def tiny_checkpoint(tmp_path):
    torch.manual_seed(3)
    model = Sam3D(Sam3DConfig.tiny()).eval()
    return model, save_checkpoint(model, tmp_path / "tiny.pth", epoch=7)


def test_save_and_load_round_trip_gives_the_same_outputs(tiny_checkpoint):
    model, path = tiny_checkpoint
    fresh = Sam3D(Sam3DConfig.tiny()).eval()
    report = load_checkpoint(fresh, path, strict=True)
    assert report.ok and not report.initialised
    x = torch.randn(1, 1, 64, 64, 64)
    click = (torch.tensor([[[30.0, 30.0, 30.0]]]), torch.tensor([[1]]))
    with torch.no_grad():
        assert torch.allclose(model(x, points=click)[0], fresh(x, points=click)[0])
    assert torch.load(path, weights_only=True)["epoch"] == 7


def test_turbo_layout_with_module_prefix_and_training_extras(tiny_checkpoint, tmp_path):
    model, _ = tiny_checkpoint
    state = {f"module.{k}": v for k, v in model.state_dict().items() if not k.startswith(NEW_BRANCHES)}
    path = tmp_path / "sam_med3d_turbo.pth"
    torch.save({"epoch": 3, "model_state_dict": state, "args": argparse.Namespace(lr=1e-4),
                "dices": [np.float64(0.8)]}, path)
    fresh = Sam3D(Sam3DConfig.tiny())
    report = load_checkpoint(fresh, path, strict=True)
    assert report.ok and report.loaded == len(state)
    assert torch.equal(fresh.state_dict()["mask_decoder.iou_token.weight"], model.state_dict()["mask_decoder.iou_token.weight"])


def test_mismatches_are_reported_in_one_summary(tiny_checkpoint, tmp_path):
    model, _ = tiny_checkpoint
    state = model.state_dict()
    state.pop("image_encoder.neck.0.weight")
    state["image_encoder.pos_embed"] = torch.zeros(1, 4, 4, 4, 96)
    state["image_encoder.extra.weight"] = torch.zeros(2)
    path = tmp_path / "bad.pth"
    torch.save({"model_state_dict": state}, path)
    with pytest.raises(InputError, match=r"bad.pth: checkpoint does not match .*1 missing \(image_encoder.neck.0.weight\)"):
        load_checkpoint(Sam3D(Sam3DConfig.tiny()), path, strict=True)
    report = load_checkpoint(Sam3D(Sam3DConfig.tiny()), path)
    assert report.missing == ["image_encoder.neck.0.weight"] and report.unexpected == ["image_encoder.extra.weight"]
    assert "image_encoder.pos_embed file [1, 4, 4, 4, 96] vs model [1, 8, 8, 8, 96]" in report.summary()
    with pytest.raises(InputError, match="does not match"):
        load_engine("sam3d-tiny", checkpoint=path)


def test_unreadable_checkpoint(tmp_path):
    path = tmp_path / "notes.pth"
    path.write_text("not a checkpoint")
    with pytest.raises(InputError, match="notes.pth: cannot read checkpoint"):
        load_checkpoint(Sam3D(Sam3DConfig.tiny()), path)
    with pytest.raises(InputError, match="checkpoint not found"):
        load_checkpoint(Sam3D(Sam3DConfig.tiny()), tmp_path / "missing.pth")


def test_engine_records_checkpoint_label(tiny_checkpoint):
    _, path = tiny_checkpoint
    engine = load_engine("sam3d-tiny", checkpoint=path)
    assert engine.weights_label.startswith("tiny.pth@sha256:") and engine.name == "sam3d-tiny"
    assert engine.load_report.ok
