"""SAM-Med3D's decomposed relative-position embeddings (shared by both attention paths)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def get_rel_pos(q_size: int, k_size: int, rel_pos: torch.Tensor) -> torch.Tensor:
    """Relative-position embeddings ``[q_size, k_size, C]`` (interpolated if the table differs)."""
    max_dist = 2 * max(q_size, k_size) - 1
    if rel_pos.shape[0] != max_dist:
        rel_pos = F.interpolate(rel_pos.reshape(1, rel_pos.shape[0], -1).permute(0, 2, 1),
                                size=max_dist, mode="linear").reshape(-1, max_dist).permute(1, 0)
    q_coords = torch.arange(q_size, device=rel_pos.device)[:, None] * max(k_size / q_size, 1.0)
    k_coords = torch.arange(k_size, device=rel_pos.device)[None, :] * max(q_size / k_size, 1.0)
    relative = (q_coords - k_coords) + (k_size - 1) * max(q_size / k_size, 1.0)
    return rel_pos[relative.long()]


def decomposed_rel_pos_bias(q: torch.Tensor, rel_pos_d: torch.Tensor, rel_pos_h: torch.Tensor,
                            rel_pos_w: torch.Tensor, size: tuple[int, int, int]) -> torch.Tensor:
    """Additive attention bias ``[B, N, N]`` of the decomposed relative positions (queries = keys grid)."""
    d, h, w = size
    rd, rh, rw = get_rel_pos(d, d, rel_pos_d), get_rel_pos(h, h, rel_pos_h), get_rel_pos(w, w, rel_pos_w)
    b, _, dim = q.shape
    r_q = q.reshape(b, d, h, w, dim)
    rel_d = torch.einsum("bdhwc,dkc->bdhwk", r_q, rd)
    rel_h = torch.einsum("bdhwc,hkc->bdhwk", r_q, rh)
    rel_w = torch.einsum("bdhwc,wkc->bdhwk", r_q, rw)
    # SAM-Med3D's exact broadcasting (not MViTv2's per-axis pairing); pretrained weights
    # expect it, and it needs a cubic token grid, which every crop here has.
    bias = rel_d[:, :, :, :, None, None] + rel_h[:, :, :, None, :, None] + rel_w[:, :, :, None, None, :]
    return bias.reshape(b, d * h * w, d * h * w)
