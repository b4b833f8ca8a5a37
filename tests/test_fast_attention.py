"""The fast windowed attention equals SAM-Med3D's literal padded computation."""

import pytest
import torch

from rtsam.engines.sam3d.fast_attention import fast_windowed_attention
from rtsam.engines.sam3d.image_encoder import Attention, windowed_attention


def _attention(dim, heads, window, dtype, seed=0):
    torch.manual_seed(seed)
    attn = Attention(dim, heads, (window,) * 3).to(dtype)
    with torch.no_grad():  # large biases and rel-pos tables make the padded keys matter
        for name, p in attn.named_parameters():
            if "rel_pos" in name or "bias" in name:
                p.normal_(0, 0.5)
    return attn


@pytest.mark.parametrize("dim,heads,n,window", [(96, 3, 4, 7), (768, 12, 8, 14), (64, 2, 5, 5)])
def test_matches_literal_padding_float32(dim, heads, n, window):
    attn = _attention(dim, heads, window, torch.float32)
    x = torch.nn.functional.layer_norm(torch.randn(1, n, n, n, dim), (dim,))
    with torch.no_grad():
        ref, fast = windowed_attention(attn, x, window), fast_windowed_attention(attn, x, window)
    assert (ref - fast).abs().max().item() < 1e-4


def test_exact_in_float64():
    attn = _attention(48, 2, 7, torch.float64)
    x = torch.randn(1, 4, 4, 4, 48, dtype=torch.float64)
    with torch.no_grad():
        err = (windowed_attention(attn, x, 7) - fast_windowed_attention(attn, x, 7)).abs().max().item()
    assert err < 1e-12


def test_gradients_match():
    attn = _attention(48, 2, 7, torch.float64)
    x = torch.randn(1, 4, 4, 4, 48, dtype=torch.float64, requires_grad=True)
    g_ref = torch.autograd.grad(windowed_attention(attn, x, 7).square().sum(), x)[0]
    g_fast = torch.autograd.grad(fast_windowed_attention(attn, x, 7).square().sum(), x)[0]
    assert torch.allclose(g_ref, g_fast, atol=1e-9)


def test_rejects_grids_larger_than_the_window():
    attn = _attention(48, 2, 4, torch.float32)
    with pytest.raises(ValueError, match="within one window"):
        fast_windowed_attention(attn, torch.randn(1, 5, 5, 5, 48), 4)


def _encoder_input(model, seed=0):
    torch.manual_seed(seed)
    size = model.config.img_size
    with torch.no_grad():
        return model.image_encoder.patch_embed(torch.randn(1, 1, size, size, size)) + model.image_encoder.pos_embed


def test_windowed_block_of_a_sam_med3d_checkpoint():
    """ViT-B with SAM-Med3D's key names and random values: one windowed block both ways."""
    from test_sam3d_checkpoint import sam_med3d_vit_b_shapes

    from rtsam.engines.sam3d.checkpoint import load_state_dict
    from rtsam.engines.sam3d.config import Sam3DConfig
    from rtsam.engines.sam3d.model import Sam3D

    generator = torch.Generator().manual_seed(1)
    state = {k: 0.1 * torch.randn(shape, generator=generator) for k, shape in sam_med3d_vit_b_shapes().items()}
    model = Sam3D(Sam3DConfig.vit_b()).eval()
    assert load_state_dict(model, state, "sam_med3d_turbo.pth", strict=True).ok
    block = model.image_encoder.blocks[0]
    assert block.window_size == 14 and block.fast_windows
    x = _encoder_input(model)
    with torch.no_grad():
        fast = block(x)
        block.fast_windows = False
        reference = block(x)
    assert (fast - reference).abs().max().item() < 1e-4


def test_whole_encoder_fast_equals_reference():
    from rtsam.engines.sam3d.config import Sam3DConfig
    from rtsam.engines.sam3d.model import Sam3D

    torch.manual_seed(2)
    model = Sam3D(Sam3DConfig.tiny()).eval()
    assert model.config.grid_size < model.config.window_size  # one padded window, as in ViT-B
    with torch.no_grad():
        for name, p in model.image_encoder.named_parameters():
            if "rel_pos" in name or "qkv.bias" in name:
                p.normal_(0, 0.5)
    images = torch.randn(1, 1, 64, 64, 64)
    with torch.no_grad():
        fast = model.embed(images)
        model.image_encoder.use_reference_attention()
        reference = model.embed(images)
    assert (fast - reference).abs().max().item() < 1e-4
    assert fast.abs().max().item() > 0.1


def test_key_alignment_padding_changes_nothing():
    """The GPU path pads 513 keys to 520 masked zero keys (fused kernels need an aligned mask)."""
    from rtsam.engines.sam3d.fast_attention import KEY_ALIGN, _aligned

    torch.manual_seed(0)
    q, k, v = torch.randn(3, 1, 2, 27, 16).unbind(0)
    mask = torch.randn(1, 2, 27, 27)
    keys, values, padded = _aligned(k, v, mask)
    assert keys.shape[2] % KEY_ALIGN == 0 and torch.isinf(padded[..., 27:]).all()
    plain = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    aligned = torch.nn.functional.scaled_dot_product_attention(q, keys, values, attn_mask=padded)
    assert (plain - aligned).abs().max().item() < 1e-6
