"""The 3D SAM: image encoder (once per crop), prompt encoder + mask decoder (once per click)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import Sam3DConfig
from .image_encoder import ImageEncoderViT3D
from .mask_decoder import MaskDecoder3D
from .prompt_encoder import PromptEncoder3D


class Sam3D(nn.Module):
    mask_threshold: float = 0.0

    def __init__(self, config: Sam3DConfig | None = None):
        super().__init__()
        self.config = config or Sam3DConfig.vit_b()
        self.image_encoder = ImageEncoderViT3D(self.config)
        self.prompt_encoder = PromptEncoder3D(self.config)
        self.mask_decoder = MaskDecoder3D(self.config)

    def embed(self, images: Tensor) -> Tensor:
        """Normalised crops ``[B, 1, S, S, S]`` -> embeddings ``[B, prompt_dim, g, g, g]``."""
        size = self.config.img_size
        if images.ndim != 5 or images.shape[1] != 1 or tuple(images.shape[2:]) != (size,) * 3:
            raise ValueError(f"expected images [B, 1, {size}, {size}, {size}], got {list(images.shape)}")
        return self.image_encoder(images)

    def decode(self, embeddings: Tensor, points: tuple[Tensor, Tensor] | Tensor | None = None,
               boxes: Tensor | None = None, text_embeddings: Tensor | None = None,
               mask_logits: Tensor | None = None, multimask: bool = False,
               labels: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Prompts (crop voxel coords, d-h-w order) -> (low-res logits ``[B, 1|3, s, s, s]``, IoU ``[B, 1|3]``).

        ``points`` is ``(coords [B, N, 3], labels [B, N])`` (or ``coords`` with ``labels=``), labels
        1 positive, 0 negative, -1 padding; ``boxes`` is ``[B, 2, 3]`` (min corner, max corner);
        ``text_embeddings`` the pooled text-encoder output ``[B, text_dim]``; ``mask_logits`` the
        previous low-res logits ``[B, 1, s, s, s]``, ``s = config.low_res_size``. Without them (the
        first decode) the mask input is zeros, as in SAM-Med3D's inference and training, so the dense
        prompt is ``mask_downscaling(zeros)``; ``no_mask_embed`` is never used (SAM-Med3D never trained it).
        """
        if isinstance(points, Tensor):
            if labels is None:
                raise ValueError("point coordinates need labels (1 positive, 0 negative, -1 padding)")
            points = (points, labels)
        if mask_logits is None:
            mask_logits = embeddings.new_zeros((embeddings.shape[0], 1, *(self.config.low_res_size,) * 3))
        elif mask_logits.shape[-1] != self.config.low_res_size:
            mask_logits = F.interpolate(mask_logits, size=(self.config.low_res_size,) * 3, mode="trilinear")
        sparse, dense = self.prompt_encoder(points=points, boxes=boxes, masks=mask_logits,
                                            text_embeddings=text_embeddings)
        return self.mask_decoder(embeddings, self.prompt_encoder.get_dense_pe(), sparse, dense, multimask)

    def upscale(self, low_res_logits: Tensor) -> Tensor:
        """Low-res logits -> logits on the ``img_size`` crop (trilinear)."""
        return F.interpolate(low_res_logits, size=(self.config.img_size,) * 3, mode="trilinear", align_corners=False)

    def forward(self, images: Tensor, **prompts) -> tuple[Tensor, Tensor]:
        return self.decode(self.embed(images), **prompts)

    @property
    def device(self) -> torch.device:
        return self.mask_decoder.iou_token.weight.device
