"""Shared pieces of the SAM 3 tests: a tiny SAM 3 folder built from transformers' config classes
and a small crop of the real brain1 MR around its tumour."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from rtsam.io import read_image
from rtsam.volume import Volume

SIZE = 56  # model input: 4 x 4 patches of 14 pixels; masks come out at 16 x 16
INIT = 0.2  # weight init std: large enough that random layers pass signals on (0.02 would not)


def tiny_sam3_config():
    from transformers.models.sam3.configuration_sam3 import (Sam3Config, Sam3DETRDecoderConfig,
                                                            Sam3DETREncoderConfig, Sam3GeometryEncoderConfig,
                                                            Sam3MaskDecoderConfig, Sam3VisionConfig, Sam3ViTConfig)

    small = dict(hidden_size=32, num_attention_heads=2, initializer_range=INIT)
    vit = Sam3ViTConfig(**small, intermediate_size=64, num_hidden_layers=2, image_size=SIZE, patch_size=14,
                        pretrain_image_size=SIZE, window_size=2, global_attn_indexes=[1])
    return Sam3Config(
        vision_config=Sam3VisionConfig(backbone_config=vit, fpn_hidden_size=32, initializer_range=INIT,
                                       backbone_feature_sizes=[[16, 16], [8, 8], [4, 4]]),
        text_config=dict(**small, vocab_size=64, intermediate_size=64, projection_dim=32, num_hidden_layers=1,
                         max_position_embeddings=32, bos_token_id=0, eos_token_id=1, pad_token_id=1),
        geometry_encoder_config=Sam3GeometryEncoderConfig(**small, num_layers=1, intermediate_size=64, roi_size=2),
        detr_encoder_config=Sam3DETREncoderConfig(**small, num_layers=1, intermediate_size=64),
        detr_decoder_config=Sam3DETRDecoderConfig(**small, num_layers=1, num_queries=8, intermediate_size=64),
        mask_decoder_config=Sam3MaskDecoderConfig(**small),
        initializer_range=INIT,
    )


def tiny_processor():
    """Sam3Processor with SAM 3's image processor at SIZE and a letter-level CLIP tokenizer."""
    from transformers import CLIPTokenizer, Sam3Processor
    from transformers.models.sam3 import Sam3ImageProcessor

    letters = "abcdefghijklmnopqrstuvwxyz"
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    vocab.update({token: i + 2 for i, token in enumerate([*letters, *(c + "</w>" for c in letters)])})
    return Sam3Processor(image_processor=Sam3ImageProcessor(size={"height": SIZE, "width": SIZE}),
                         tokenizer=CLIPTokenizer(vocab=vocab, merges=[]))


def save_tiny_sam3(folder: Path, seed: int = 0) -> Path:
    """A from_pretrained folder (config.json, model.safetensors, tokenizer, processor) of a tiny SAM 3."""
    from transformers import Sam3Model

    torch.manual_seed(seed)
    Sam3Model(tiny_sam3_config()).save_pretrained(str(folder))
    tiny_processor().save_pretrained(str(folder))
    return folder


def brain_crop(data: Path, size: int = 64) -> tuple[Volume, Volume]:
    """Slices 8-20 of the real brain1 MR (tumour on 11-17), ``size`` x ``size`` pixels around the tumour."""
    image = read_image(data / "pyradiomics/brain1_image.nrrd")
    label = read_image(data / "pyradiomics/brain1_label.nrrd")
    _, rows, cols = np.nonzero(label.array)
    j0, i0 = int(rows.mean()) - size // 2, int(cols.mean()) - size // 2

    def crop(volume: Volume) -> Volume:
        return Volume(volume.array[8:21, j0:j0 + size, i0:i0 + size], volume.spacing,
                      tuple(volume.ijk_to_lps([i0, j0, 8])), volume.direction, metadata=dict(volume.metadata))

    return crop(image), crop(label)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The tiny model is faster on one thread (and the CPU is shared)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return save_tiny_sam3(tmp_path_factory.mktemp("sam3") / "tiny-sam3")


@pytest.fixture(scope="module")
def crop(data):
    return brain_crop(data)
