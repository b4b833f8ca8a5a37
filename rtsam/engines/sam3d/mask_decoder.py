"""SAM-Med3D's mask decoder: IoU token + mask tokens through the two-way transformer, transposed-conv
upscaling (x4) and per-token hypernetwork MLPs; names as in ``mask_decoder3D.py``."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import Sam3DConfig
from .image_encoder import LayerNorm3d
from .transformer import TwoWayTransformer3D


class MLP(nn.Module):
    def __init__(self, input_dim: int, hidden_dim: int, output_dim: int, num_layers: int):
        super().__init__()
        dims = [input_dim] + [hidden_dim] * (num_layers - 1)
        self.layers = nn.ModuleList(nn.Linear(n, k) for n, k in zip(dims, dims[1:] + [output_dim]))

    def forward(self, x: Tensor) -> Tensor:
        for i, layer in enumerate(self.layers):
            x = F.relu(layer(x)) if i < len(self.layers) - 1 else layer(x)
        return x


class MaskDecoder3D(nn.Module):
    def __init__(self, config: Sam3DConfig):
        super().__init__()
        dim = config.prompt_dim
        self.transformer = TwoWayTransformer3D(config.decoder_depth, dim, config.decoder_heads, config.decoder_mlp_dim)
        self.num_mask_tokens = config.num_multimask_outputs + 1
        self.iou_token = nn.Embedding(1, dim)
        self.mask_tokens = nn.Embedding(self.num_mask_tokens, dim)
        self.output_upscaling = nn.Sequential(
            nn.ConvTranspose3d(dim, dim // 4, kernel_size=2, stride=2),
            LayerNorm3d(dim // 4),
            nn.GELU(),
            nn.ConvTranspose3d(dim // 4, dim // 8, kernel_size=2, stride=2),
            nn.GELU(),
        )
        self.output_hypernetworks_mlps = nn.ModuleList(
            MLP(dim, dim, dim // 8, 3) for _ in range(self.num_mask_tokens)
        )
        self.iou_prediction_head = MLP(dim, config.iou_head_hidden_dim, self.num_mask_tokens, config.iou_head_depth)

    def forward(self, image_embeddings: Tensor, image_pe: Tensor, sparse_prompt_embeddings: Tensor,
                dense_prompt_embeddings: Tensor, multimask_output: bool) -> tuple[Tensor, Tensor]:
        """-> (logits ``[B, 1|3, 4D, 4H, 4W]``, predicted IoU ``[B, 1|3]``)."""
        masks, iou_pred = self.predict_masks(image_embeddings, image_pe, sparse_prompt_embeddings,
                                             dense_prompt_embeddings)
        chosen = slice(1, None) if multimask_output else slice(0, 1)
        return masks[:, chosen], iou_pred[:, chosen]

    def predict_masks(self, image_embeddings: Tensor, image_pe: Tensor, sparse: Tensor,
                      dense: Tensor) -> tuple[Tensor, Tensor]:
        output_tokens = torch.cat([self.iou_token.weight, self.mask_tokens.weight], dim=0)
        tokens = torch.cat((output_tokens.unsqueeze(0).expand(sparse.shape[0], -1, -1), sparse), dim=1)
        src = image_embeddings
        if src.shape[0] != tokens.shape[0]:
            src = torch.repeat_interleave(src, tokens.shape[0], dim=0)
        src = src + dense
        pos_src = torch.repeat_interleave(image_pe, tokens.shape[0] // image_pe.shape[0], dim=0)
        b, c, d, h, w = src.shape
        hs, src = self.transformer(src, pos_src, tokens)
        iou_token_out, mask_tokens_out = hs[:, 0, :], hs[:, 1:1 + self.num_mask_tokens, :]
        upscaled = self.output_upscaling(src.transpose(1, 2).reshape(b, c, d, h, w))
        hyper_in = torch.stack([mlp(mask_tokens_out[:, i, :]) for i, mlp in enumerate(self.output_hypernetworks_mlps)],
                               dim=1)
        b, c, d, h, w = upscaled.shape
        masks = (hyper_in @ upscaled.view(b, c, d * h * w)).view(b, -1, d, h, w)
        return masks, self.iou_prediction_head(iou_token_out)
