"""Exact windowed attention at the cost of a global attention over the real tokens.

SAM-Med3D pads its 8^3 token grid to one 14^3 window in the windowed blocks. Padding comes
after ``norm1``, so every padded token has ``q = b_q``, ``k = b_k``, ``v = b_v`` (the qkv
biases), and padded queries are cropped away. For a real query ``i`` the padded keys enter
the softmax only through ``sum_j exp(logit(i, j))``, and with SAM-Med3D's broadcasting of the
decomposed relative positions (see ``rel_pos.decomposed_rel_pos_bias``) the bias of key
``j = (kd, kh, kw)`` is

    q_i . Rd[qd, kw]  +  q(qd, qh, kd) . Rh[qh, kw]  +  q(qd, qh, kh) . Rw[kh, kw]

so for each ``kw`` the sum over ``(kd, kh)`` factorises into two per-axis sums. Splitting
each axis into its real (< n) and padded (>= n) positions gives the padded total as a sum of
positive products (no cancellation):

    sum_{kw >= n} eA SD SH  +  sum_{kw < n} eA (SD_pad SH + SD_real SH_pad)

The padded keys are then one extra key ``b_k`` with value ``b_v`` and an additive bias of
``log`` of that sum, and the block is a single ``scaled_dot_product_attention`` over
``n^3 + 1`` keys. This equals the literal padded computation up to float rounding. On a GPU
the keys are padded further, with masked-out zero keys, to a multiple of ``KEY_ALIGN``, so that
the fused (memory-efficient / cuDNN) SDPA kernels, which need an aligned mask, can run.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .rel_pos import get_rel_pos

KEY_ALIGN = 8


def fast_windowed_attention(attn, x: torch.Tensor, window: int) -> torch.Tensor:
    """Windowed attention of ``attn`` on ``x`` ``[B, n, n, n, C]`` with ``n <= window``."""
    b, d, h, w, _ = x.shape
    if not (d == h == w <= window):
        raise ValueError(f"fast windowed attention needs a cubic grid within one window, got {(d, h, w)}")
    n, heads = d, attn.num_heads
    qkv = attn.qkv(x).reshape(b, n ** 3, 3, heads, -1).permute(2, 0, 3, 1, 4)
    q, k, v = qkv[0], qkv[1], qkv[2]  # [B, heads, N, c]
    bias_q, bias_k, bias_v = attn.qkv.bias.view(3, heads, -1)

    rd = get_rel_pos(window, window, attn.rel_pos_d)[:n]  # [n query coords, window keys, c]
    rh = get_rel_pos(window, window, attn.rel_pos_h)[:n]
    rw = get_rel_pos(window, window, attn.rel_pos_w)
    q_grid = q.reshape(b, heads, n, n, n, -1)  # [B, heads, qd, qh, qw, c]
    # q of the whole padded row (qd, qh, t) for t < window: real tokens, then b_q.
    row = torch.cat([q_grid, bias_q[None, :, None, None, None].expand(b, heads, n, n, window - n, -1)], dim=4)

    a = torch.einsum("bedhwc,dkc->bedhwk", q_grid, rd)  # q_i . Rd[qd, kw]
    bh = torch.einsum("bedhtc,hkc->bedhtk", row, rh)  # [.., qd, qh, kd, kw]
    cw = torch.einsum("bedhtc,tkc->bedhtk", row, rw)  # [.., qd, qh, kh, kw]

    real_bias = (a[..., None, None, :n] + bh[:, :, :, :, None, :n, None, :n]
                 + cw[:, :, :, :, None, None, :n, :n])  # [B, e, qd, qh, qw, kd, kh, kw]
    # The extra key's content term (scale q . b_k) comes from SDPA itself; the mask adds the rest.
    mask = torch.cat([real_bias.reshape(b, heads, n ** 3, n ** 3),
                      _log_padded_sum(a, bh, cw, n).reshape(b, heads, n ** 3, 1)], dim=-1)
    keys = torch.cat([k, bias_k[None, :, None].expand(b, heads, 1, -1)], dim=2)
    values = torch.cat([v, bias_v[None, :, None].expand(b, heads, 1, -1)], dim=2)
    if q.is_cuda:
        keys, values, mask = _aligned(keys, values, mask)
    out = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask.to(q.dtype), scale=attn.scale)
    return attn.proj(out.permute(0, 2, 1, 3).reshape(b, n, n, n, -1))


def _aligned(keys: torch.Tensor, values: torch.Tensor, mask: torch.Tensor):
    """Zero keys and values, masked out (-inf), up to a multiple of ``KEY_ALIGN`` keys."""
    extra = -keys.shape[2] % KEY_ALIGN
    if not extra:
        return keys, values, mask
    pad = keys.new_zeros((*keys.shape[:2], extra, keys.shape[3]))
    blocked = mask.new_full((*mask.shape[:-1], extra), float("-inf"))
    return torch.cat([keys, pad], 2), torch.cat([values, pad], 2), torch.cat([mask, blocked], -1)


def _log_padded_sum(a: torch.Tensor, bh: torch.Tensor, cw: torch.Tensor, n: int) -> torch.Tensor:
    """log of the summed exp(bias) over padded keys, ``[B, heads, qd, qh, qw, 1]``."""
    sd_real, sd_pad = bh[..., :n, :].logsumexp(-2), bh[..., n:, :].logsumexp(-2)  # [.., qd, qh, kw]
    sh_real, sh_pad = cw[..., :n, :].logsumexp(-2), cw[..., n:, :].logsumexp(-2)
    sd_all, sh_all = torch.logaddexp(sd_real, sd_pad), torch.logaddexp(sh_real, sh_pad)
    per_kw = torch.cat([
        torch.logaddexp(sd_pad + sh_all, sd_real + sh_pad)[..., :n],  # kw real: kd or kh padded
        (sd_all + sh_all)[..., n:],  # kw padded: every (kd, kh)
    ], dim=-1)
    return (a + per_kw[..., None, :]).logsumexp(-1, keepdim=True)
