"""Sizes of the 3D SAM: ``vit_b`` is SAM-Med3D's ViT-B (``sam_med3d_turbo.pth``), ``tiny`` the
same code made small enough for tests and CPU demos."""

from __future__ import annotations

from dataclasses import dataclass, replace

from ...errors import InputError


@dataclass(frozen=True)
class Sam3DConfig:
    img_size: int = 128  # crop edge in voxels (cubic crop)
    patch_size: int = 16
    embed_dim: int = 768  # image encoder width
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    window_size: int = 14  # windowed attention; 0 = global everywhere
    global_attn_indexes: tuple[int, ...] = (2, 5, 8, 11)
    prompt_dim: int = 384  # neck output = prompt/decoder width
    mask_in_chans: int = 16
    decoder_depth: int = 2
    decoder_heads: int = 8
    decoder_mlp_dim: int = 2048
    num_multimask_outputs: int = 3
    iou_head_depth: int = 3
    iou_head_hidden_dim: int = 256
    text_dim: int = 384  # pooled text-encoder width (MiniLM 384, Bio_ClinicalBERT 768)
    spacing_mm: float = 1.5  # isotropic resampling of the crop

    def __post_init__(self):
        if self.img_size % self.patch_size:
            raise InputError(f"img_size {self.img_size} is not a multiple of patch_size {self.patch_size}")
        if self.prompt_dim % 3 or self.prompt_dim % 8 or (self.prompt_dim // 2) % self.decoder_heads:
            raise InputError(f"prompt_dim {self.prompt_dim} must divide by 3, 8 and 2 x decoder_heads")

    @property
    def grid_size(self) -> int:
        """Tokens per axis of the image embedding."""
        return self.img_size // self.patch_size

    @property
    def low_res_size(self) -> int:
        """Edge of the decoder's low-resolution logits (4x the embedding grid)."""
        return 4 * self.grid_size

    @classmethod
    def vit_b(cls) -> "Sam3DConfig":
        return cls()

    @classmethod
    def tiny(cls) -> "Sam3DConfig":
        return cls(img_size=64, patch_size=8, embed_dim=96, depth=4, num_heads=3, window_size=10,
                   global_attn_indexes=(1, 3), prompt_dim=96, mask_in_chans=8, decoder_heads=4,
                   decoder_mlp_dim=256, iou_head_hidden_dim=64)

    @classmethod
    def named(cls, name: str | None, **overrides) -> "Sam3DConfig":
        makers = {"vit_b": cls.vit_b, "tiny": cls.tiny}
        if (name or "vit_b") not in makers:
            raise InputError(f"unknown sam3d config '{name}'; available: {', '.join(makers)}")
        return replace(makers[name or "vit_b"](), **overrides)
