"""Which parts of the 3D SAM train: all, the decoder side (frozen encoder), or LoRA on the encoder.

- ``all``: every parameter.
- ``decoder``: prompt encoder (text adapter included) and mask decoder; the image encoder is
  frozen, so its embeddings are computed without gradients.
- ``lora``: the decoder side plus low-rank adapters (peft) on the encoder's ``qkv`` projections;
  ``merged_model`` folds them back into plain ``qkv`` weights, so a LoRA-trained model
  saves as an ordinary checkpoint.
"""

from __future__ import annotations

import copy

from torch import nn

from ..errors import InputError

TRAIN_MODES = ("all", "decoder", "lora")


def configure_trainable(model: nn.Module, mode: str, lora_rank: int = 8, lora_alpha: float | None = None) -> list[nn.Parameter]:
    """Set ``requires_grad`` per ``mode`` (adding LoRA adapters for ``lora``); returns the trainable parameters."""
    if mode not in TRAIN_MODES:
        raise InputError(f"unknown --train mode '{mode}'; choose one of {', '.join(TRAIN_MODES)}")
    if mode == "lora":
        add_lora(model.image_encoder, lora_rank, lora_alpha)
    for name, param in model.named_parameters():
        in_encoder = name.startswith("image_encoder.")
        param.requires_grad = mode == "all" or not in_encoder or (mode == "lora" and "lora_" in name)
    return [p for p in model.parameters() if p.requires_grad]


def add_lora(encoder: nn.Module, rank: int, alpha: float | None = None) -> None:
    """Low-rank adapters on every ``qkv`` linear layer of ``encoder`` (in place, via peft)."""
    from peft import LoraConfig, inject_adapter_in_model

    if rank < 1:
        raise InputError(f"--lora-rank must be at least 1, got {rank}")
    config = LoraConfig(r=rank, lora_alpha=alpha or 2 * rank, target_modules=["qkv"], lora_dropout=0.0)
    inject_adapter_in_model(config, encoder)


def merged_model(model: nn.Module) -> nn.Module:
    """The model with LoRA adapters merged into plain base layers (a copy; the model itself when no LoRA)."""
    from peft.tuners.lora import LoraLayer

    if not any(isinstance(m, LoraLayer) for m in model.modules()):
        return model
    merged = copy.deepcopy(model)
    for name, module in list(merged.named_modules()):
        if isinstance(module, LoraLayer):
            module.merge()
            parent_name, _, child = name.rpartition(".")
            setattr(merged.get_submodule(parent_name) if parent_name else merged, child, module.get_base_layer())
    return merged


def count_parameters(model: nn.Module) -> dict[str, int]:
    return {
        "total": sum(p.numel() for p in model.parameters()),
        "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
    }
