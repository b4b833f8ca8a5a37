"""Shapes and behaviour of the 3D SAM modules (tiny config, random weights)."""

import pytest
import torch

from rtsam.engines.sam3d.config import Sam3DConfig
from rtsam.engines.sam3d.image_encoder import Attention, window_partition3d, window_unpartition3d, windowed_attention
from rtsam.engines.sam3d.model import Sam3D
from rtsam.errors import InputError


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return Sam3D(Sam3DConfig.tiny()).eval()


@pytest.fixture(scope="module")
def embedding(tiny):
    with torch.no_grad():
        return tiny.embed(torch.randn(2, 1, 64, 64, 64))


def test_configs():
    vit_b, tiny = Sam3DConfig.vit_b(), Sam3DConfig.named("tiny")
    assert (vit_b.img_size, vit_b.patch_size, vit_b.embed_dim, vit_b.depth, vit_b.num_heads) == (128, 16, 768, 12, 12)
    assert (vit_b.window_size, vit_b.global_attn_indexes, vit_b.prompt_dim) == (14, (2, 5, 8, 11), 384)
    assert (vit_b.grid_size, vit_b.low_res_size) == (8, 32)
    assert tiny.grid_size == 8 and tiny.img_size == 64
    with pytest.raises(InputError, match="unknown sam3d config"):
        Sam3DConfig.named("vit_h")


def test_embed_and_decode_shapes(tiny, embedding):
    assert embedding.shape == (2, 96, 8, 8, 8)
    points = (torch.tensor([[[30.0, 31.0, 32.0], [10.0, 12.0, 14.0]]] * 2), torch.tensor([[1, 0]] * 2))
    boxes = torch.tensor([[[8.0, 8.0, 8.0], [40.0, 44.0, 48.0]]] * 2)
    with torch.no_grad():
        low, iou = tiny.decode(embedding, points=points, boxes=boxes, text_embeddings=torch.randn(2, 384),
                               mask_logits=torch.randn(2, 1, 32, 32, 32))
        multi, multi_iou = tiny.decode(embedding, points=points, multimask=True)
    assert low.shape == (2, 1, 32, 32, 32) and iou.shape == (2, 1)
    assert multi.shape == (2, 3, 32, 32, 32) and multi_iou.shape == (2, 3)
    assert tiny.upscale(low).shape == (2, 1, 64, 64, 64)
    assert torch.isfinite(low).all()
    with torch.no_grad():
        separate, _ = tiny.decode(embedding, points=points[0], labels=points[1], boxes=boxes)
        paired, _ = tiny.decode(embedding, points=points, boxes=boxes)
    assert torch.equal(separate, paired)


def test_each_prompt_changes_the_output(tiny, embedding):
    emb = embedding[:1]
    click = (torch.tensor([[[20.0, 20.0, 20.0]]]), torch.tensor([[1]]))
    moved = (torch.tensor([[[50.0, 40.0, 30.0]]]), torch.tensor([[1]]))
    negative = (click[0], torch.tensor([[0]]))
    with torch.no_grad():
        base = tiny.decode(emb, points=click)[0]
        for other in (dict(points=moved), dict(points=negative),
                      dict(points=click, boxes=torch.tensor([[[5.0, 5.0, 5.0], [30.0, 30.0, 30.0]]])),
                      dict(points=click, mask_logits=torch.randn(1, 1, 32, 32, 32))):
            assert not torch.allclose(tiny.decode(emb, **other)[0], base)


def test_fresh_text_adapter_is_neutral_then_trainable(tiny, embedding):
    """A zero-initialised adapter adds a zero token; gradients reach it."""
    click = (torch.tensor([[[20.0, 20.0, 20.0]]]), torch.tensor([[1]]))
    text = torch.randn(1, 384)
    sparse, _ = tiny.prompt_encoder(points=click, text_embeddings=text)
    assert sparse.shape == (1, 3, 96)  # click, padding point, text token
    assert torch.count_nonzero(sparse[0, 2]) == 0
    low, _ = tiny.decode(embedding[:1].detach(), points=click, text_embeddings=text)
    low.sum().backward()
    assert tiny.prompt_encoder.text_adapter[2].weight.grad.abs().sum() > 0
    tiny.zero_grad(set_to_none=True)


def test_window_partition_round_trip_and_padding():
    x = torch.randn(1, 8, 8, 8, 5)
    windows, padded = window_partition3d(x, 6)
    assert padded == (12, 12, 12) and windows.shape == (8, 6, 6, 6, 5)
    assert torch.equal(window_unpartition3d(windows, 6, padded, (8, 8, 8)), x)


def test_windowed_attention_with_one_window_is_global_attention():
    torch.manual_seed(1)
    attn = Attention(12, 3, input_size=(8, 8, 8))
    torch.nn.init.normal_(attn.rel_pos_d)
    x = torch.randn(1, 8, 8, 8, 12)
    assert torch.allclose(windowed_attention(attn, x, 8), attn(x), atol=1e-6)
    assert not torch.allclose(windowed_attention(attn, x, 4), attn(x), atol=1e-3)


def test_embed_rejects_wrong_input_size(tiny):
    with pytest.raises(ValueError, match="expected images"):
        tiny.embed(torch.zeros(1, 1, 32, 32, 32))
