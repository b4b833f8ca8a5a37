"""SAM-Med3D's 3D ViT image encoder (module and parameter names match ``image_encoder3D.py``).

Tokens are kept as ``[B, D, H, W, C]``. Windowed blocks pad the token grid to a multiple of
the window and attend within each window; blocks listed in ``global_attn_indexes`` attend over
the whole grid. When the grid fits in one window (SAM-Med3D: 8^3 tokens, window 14) the
windowed blocks use ``fast_windowed_attention`` (exact, no padded tokens); otherwise, or with
``use_reference_attention``, the literal padded computation (``windowed_attention``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import Sam3DConfig
from .fast_attention import fast_windowed_attention
from .rel_pos import decomposed_rel_pos_bias


class LayerNorm3d(nn.Module):
    """LayerNorm over the channel axis of ``[B, C, D, H, W]``."""

    def __init__(self, num_channels: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = x.mean(1, keepdim=True)
        s = (x - u).pow(2).mean(1, keepdim=True)
        x = (x - u) / torch.sqrt(s + self.eps)
        return self.weight[:, None, None, None] * x + self.bias[:, None, None, None]


class MLPBlock(nn.Module):
    def __init__(self, embedding_dim: int, mlp_dim: int, act: type[nn.Module] = nn.GELU):
        super().__init__()
        self.lin1 = nn.Linear(embedding_dim, mlp_dim)
        self.lin2 = nn.Linear(mlp_dim, embedding_dim)
        self.act = act()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin2(self.act(self.lin1(x)))


class PatchEmbed3D(nn.Module):
    def __init__(self, patch_size: int, in_chans: int, embed_dim: int):
        super().__init__()
        self.proj = nn.Conv3d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).permute(0, 2, 3, 4, 1)  # B C D H W -> B D H W C


class ImageEncoderViT3D(nn.Module):
    def __init__(self, config: Sam3DConfig):
        super().__init__()
        c, grid = config, config.grid_size
        self.img_size = c.img_size
        self.patch_embed = PatchEmbed3D(c.patch_size, 1, c.embed_dim)
        self.pos_embed = nn.Parameter(torch.zeros(1, grid, grid, grid, c.embed_dim))
        self.blocks = nn.ModuleList(
            Block3D(c.embed_dim, c.num_heads, c.mlp_ratio,
                    window_size=0 if i in c.global_attn_indexes else c.window_size,
                    input_size=(grid, grid, grid))
            for i in range(c.depth)
        )
        self.neck = nn.Sequential(
            nn.Conv3d(c.embed_dim, c.prompt_dim, kernel_size=1, bias=False),
            LayerNorm3d(c.prompt_dim),
            nn.Conv3d(c.prompt_dim, c.prompt_dim, kernel_size=3, padding=1, bias=False),
            LayerNorm3d(c.prompt_dim),
        )

    def use_reference_attention(self, reference: bool = True) -> None:
        """Switch the windowed blocks to the literal padded computation (or back to the fast one)."""
        for block in self.blocks:
            block.fast_windows = not reference

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, 1, S, S, S]`` -> ``[B, prompt_dim, S/p, S/p, S/p]``."""
        x = self.patch_embed(x) + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return self.neck(x.permute(0, 4, 1, 2, 3))


class Block3D(nn.Module):
    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, window_size: int,
                 input_size: tuple[int, int, int]):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        attn_size = input_size if window_size == 0 else (window_size,) * 3
        self.attn = Attention(dim, num_heads, input_size=attn_size)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = MLPBlock(dim, int(dim * mlp_ratio))
        self.window_size = window_size
        self.fast_windows = True  # False: the literal padded reference (tests, benchmarks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm1(x)
        if self.window_size == 0:
            y = self.attn(y)
        elif self.fast_windows and max(y.shape[1:4]) <= self.window_size and len(set(y.shape[1:4])) == 1:
            y = fast_windowed_attention(self.attn, y, self.window_size)
        else:
            y = windowed_attention(self.attn, y, self.window_size)
        x = x + y
        return x + self.mlp(self.norm2(x))


def windowed_attention(attn: nn.Module, x: torch.Tensor, window_size: int) -> torch.Tensor:
    """Reference windowed attention: zero-pad ``[B, D, H, W, C]`` to multiples of the window,
    attend within each window (padded tokens included, as SAM-Med3D does), crop back."""
    windows, padded = window_partition3d(x, window_size)
    return window_unpartition3d(attn(windows), window_size, padded, x.shape[1:4])


def window_partition3d(x: torch.Tensor, window: int) -> tuple[torch.Tensor, tuple[int, int, int]]:
    b, d, h, w, c = x.shape
    pads = [(window - n % window) % window for n in (d, h, w)]
    if any(pads):
        x = F.pad(x, (0, 0, 0, pads[2], 0, pads[1], 0, pads[0]))
    dp, hp, wp = d + pads[0], h + pads[1], w + pads[2]
    x = x.view(b, dp // window, window, hp // window, window, wp // window, window, c)
    windows = x.permute(0, 1, 3, 5, 2, 4, 6, 7).reshape(-1, window, window, window, c)
    return windows, (dp, hp, wp)


def window_unpartition3d(windows: torch.Tensor, window: int, padded: tuple[int, int, int],
                         size: tuple[int, int, int]) -> torch.Tensor:
    dp, hp, wp = padded
    d, h, w = size
    b = windows.shape[0] // ((dp // window) * (hp // window) * (wp // window))
    x = windows.view(b, dp // window, hp // window, wp // window, window, window, window, -1)
    x = x.permute(0, 1, 4, 2, 5, 3, 6, 7).reshape(b, dp, hp, wp, -1)
    return x[:, :d, :h, :w, :].contiguous()


class Attention(nn.Module):
    """Multi-head self-attention with decomposed relative positions (rel_pos_d/h/w)."""

    def __init__(self, dim: int, num_heads: int, input_size: tuple[int, int, int]):
        super().__init__()
        self.num_heads = num_heads
        head_dim = dim // num_heads
        self.scale = head_dim ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)
        self.rel_pos_d = nn.Parameter(torch.zeros(2 * input_size[0] - 1, head_dim))
        self.rel_pos_h = nn.Parameter(torch.zeros(2 * input_size[1] - 1, head_dim))
        self.rel_pos_w = nn.Parameter(torch.zeros(2 * input_size[2] - 1, head_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, d, h, w, _ = x.shape
        n = d * h * w
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.reshape(3, b * self.num_heads, n, -1).unbind(0)
        bias = decomposed_rel_pos_bias(q, self.rel_pos_d, self.rel_pos_h, self.rel_pos_w, (d, h, w))
        x = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype), scale=self.scale)
        x = x.view(b, self.num_heads, d, h, w, -1)
        return self.proj(x.permute(0, 2, 3, 4, 1, 5).reshape(b, d, h, w, -1))
