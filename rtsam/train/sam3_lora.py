"""LoRA adapters (peft) on SAM 3's attention projections.

In the original SAM 3 code the ViT blocks have one fused ``qkv`` linear layer and the text
encoder, geometry encoder and DETR encoder/decoder use ``nn.MultiheadAttention``, whose fused
``in_proj_weight`` peft cannot split into query/key/value adapters. transformers' port splits
all of them when converting the checkpoint: every attention has separate ``nn.Linear``
``q_proj``, ``k_proj``, ``v_proj`` and ``o_proj`` (``out_proj`` in the CLIP text encoder), and
no ``nn.MultiheadAttention`` is left, so LoRA can target query and value alone.

The default targets are the query and value projections of the vision backbone (the domain
shift from photographs to CT/MR is in the image features) and of the DETR encoder and decoder
(where the text meets the image). The text encoder is left alone: one adapter serves one
task text. Targets are glob patterns over module names; a pattern matches a name or its end
after a dot (``q_proj`` matches every query projection, ``detr_decoder.*.[qv]_proj`` the
decoder's). Only ``nn.Linear`` modules are adapted; a pattern that matches none is an error.
"""

from __future__ import annotations

import fnmatch

from torch import nn

from ..engines.sam3_model import peft_warnings_silenced
from ..errors import InputError

DEFAULT_TARGETS = ("vision_encoder.backbone.*.[qv]_proj", "detr_encoder.*.[qv]_proj", "detr_decoder.*.[qv]_proj")


def resolve_targets(model: nn.Module, patterns=DEFAULT_TARGETS) -> list[str]:
    """Full names of the ``nn.Linear`` modules of ``model`` matched by ``patterns``."""
    linear = [name for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    chosen = set()
    for pattern in patterns:
        found = [n for n in linear if fnmatch.fnmatchcase(n, pattern) or fnmatch.fnmatchcase(n, f"*.{pattern}")]
        if not found:
            raise InputError(f"LoRA target {pattern!r} matches no linear layer of the model "
                             f"(e.g. {linear[:2] + linear[-2:]})")
        chosen.update(found)
    return sorted(chosen)


def add_lora(model: nn.Module, rank: int = 8, alpha: float = 16.0, dropout: float = 0.0, targets=DEFAULT_TARGETS):
    """``model`` wrapped by peft with LoRA on ``targets``; every other parameter frozen."""
    from peft import LoraConfig, get_peft_model

    if rank < 1:
        raise InputError(f"LoRA rank must be at least 1, got {rank}")
    if alpha <= 0 or not 0.0 <= dropout < 1.0:
        raise InputError(f"LoRA alpha must be positive and dropout in [0, 1), got {alpha} and {dropout}")
    config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=resolve_targets(model, targets))
    with peft_warnings_silenced():
        return get_peft_model(model, config)

