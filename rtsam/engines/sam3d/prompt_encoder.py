"""Prompt encoder: SAM-Med3D's ``PromptEncoder3D`` (Fourier PE, point and not-a-point embeddings,
mask downscaling) plus two branches SAM-Med3D never trained, under their own key prefixes:

- ``box_embeddings``: the two box corners (min, max), encoded like points plus a corner embedding;
- ``text_adapter``: MLP from the pooled text-encoder output (``text_dim``) to one sparse token.

Coordinates are crop voxel indices in tensor axis order (d, h, w), as SAM-Med3D feeds clicks.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .config import Sam3DConfig
from .image_encoder import LayerNorm3d

BRANCH_PREFIXES = {"box": "prompt_encoder.box_embeddings.", "text": "prompt_encoder.text_adapter."}
NEW_BRANCHES = tuple(BRANCH_PREFIXES.values())


class PositionEmbeddingRandom3D(nn.Module):
    """Positional encoding with random spatial frequencies (sin, cos, sin -> 3 x num_pos_feats)."""

    def __init__(self, num_pos_feats: int):
        super().__init__()
        self.register_buffer("positional_encoding_gaussian_matrix", torch.randn((3, num_pos_feats)))

    def _pe_encoding(self, coords: Tensor) -> Tensor:
        coords = 2 * math.pi * ((2 * coords - 1) @ self.positional_encoding_gaussian_matrix)
        return torch.cat([torch.sin(coords), torch.cos(coords), torch.sin(coords)], dim=-1)

    def forward(self, size: tuple[int, int, int]) -> Tensor:
        """Dense PE ``[C, D, H, W]``; the first two axes are stacked swapped, exactly as SAM-Med3D."""
        x, y, z = size
        grid = torch.ones(size, device=self.positional_encoding_gaussian_matrix.device)
        y_embed = (grid.cumsum(dim=0) - 0.5) / y
        x_embed = (grid.cumsum(dim=1) - 0.5) / x
        z_embed = (grid.cumsum(dim=2) - 0.5) / z
        return self._pe_encoding(torch.stack([x_embed, y_embed, z_embed], dim=-1)).permute(3, 0, 1, 2)

    def forward_with_coords(self, coords: Tensor, image_size: tuple[int, int, int]) -> Tensor:
        scale = torch.tensor(image_size, dtype=torch.float32, device=coords.device)
        return self._pe_encoding(coords.float() / scale)


class PromptEncoder3D(nn.Module):
    def __init__(self, config: Sam3DConfig):
        super().__init__()
        dim, grid, chans = config.prompt_dim, config.grid_size, config.mask_in_chans
        self.embed_dim = dim
        self.input_image_size = (config.img_size,) * 3
        self.image_embedding_size = (grid,) * 3
        self.pe_layer = PositionEmbeddingRandom3D(dim // 3)
        self.point_embeddings = nn.ModuleList(nn.Embedding(1, dim) for _ in range(2))  # negative, positive
        self.not_a_point_embed = nn.Embedding(1, dim)
        self.mask_downscaling = nn.Sequential(
            nn.Conv3d(1, chans // 4, kernel_size=2, stride=2),
            LayerNorm3d(chans // 4),
            nn.GELU(),
            nn.Conv3d(chans // 4, chans, kernel_size=2, stride=2),
            LayerNorm3d(chans),
            nn.GELU(),
            nn.Conv3d(chans, dim, kernel_size=1),
        )
        self.no_mask_embed = nn.Embedding(1, dim)
        self.box_embeddings = nn.Embedding(2, dim)
        self.text_adapter = nn.Sequential(nn.Linear(config.text_dim, dim), nn.GELU(), nn.Linear(dim, dim))
        reset_new_branches(self)

    def get_dense_pe(self) -> Tensor:
        return self.pe_layer(self.image_embedding_size).unsqueeze(0)

    def _embed_points(self, points: Tensor, labels: Tensor, pad: bool) -> Tensor:
        points = points + 0.5  # voxel centre
        if pad:
            points = torch.cat([points, points.new_zeros((points.shape[0], 1, 3))], dim=1)
            labels = torch.cat([labels, -labels.new_ones((labels.shape[0], 1))], dim=1)
        embedding = self.pe_layer.forward_with_coords(points, self.input_image_size)
        embedding = torch.where((labels == -1)[..., None], self.not_a_point_embed.weight, embedding)
        embedding = embedding + (labels == 0)[..., None] * self.point_embeddings[0].weight
        return embedding + (labels == 1)[..., None] * self.point_embeddings[1].weight

    def _embed_boxes(self, boxes: Tensor) -> Tensor:
        corners = self.pe_layer.forward_with_coords(boxes.reshape(-1, 2, 3) + 0.5, self.input_image_size)
        return corners + self.box_embeddings.weight[None]

    def _embed_text(self, text_embeddings: Tensor) -> Tensor:
        return self.text_adapter(text_embeddings.float())[:, None, :]

    def forward(self, points: tuple[Tensor, Tensor] | None = None, boxes: Tensor | None = None,
                masks: Tensor | None = None, text_embeddings: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """-> sparse ``[B, N, C]`` (points, box corners, text token) and dense ``[B, C, g, g, g]``."""
        given = [t for t in (points[0] if points else None, boxes, masks, text_embeddings) if t is not None]
        bs = given[0].shape[0] if given else 1
        device = self.no_mask_embed.weight.device
        sparse = [torch.empty((bs, 0, self.embed_dim), device=device)]
        if points is not None:
            sparse.append(self._embed_points(points[0], points[1], pad=boxes is None))
        if boxes is not None:
            sparse.append(self._embed_boxes(boxes))
        if text_embeddings is not None:
            sparse.append(self._embed_text(text_embeddings))
        if masks is not None:
            dense = self.mask_downscaling(masks)
        else:
            dense = self.no_mask_embed.weight.reshape(1, -1, 1, 1, 1).expand(bs, -1, *self.image_embedding_size)
        return torch.cat(sparse, dim=1), dense


@torch.no_grad()
def reset_new_branches(encoder: PromptEncoder3D, box: bool = True, text: bool = True) -> None:
    """Initialise the branches SAM-Med3D lacks: box corners start as the positive-point embedding
    (a corner is a positional point), the text adapter's last layer at zero (a neutral token)."""
    if box:
        encoder.box_embeddings.weight.copy_(encoder.point_embeddings[1].weight.expand(2, -1))
    if text:
        nn.init.zeros_(encoder.text_adapter[2].weight)
        nn.init.zeros_(encoder.text_adapter[2].bias)
