"""SAM 3 from a local folder (transformers' ``Sam3Model``) and its per-slice inputs and outputs.

A SAM 3 folder is what ``from_pretrained`` reads: ``config.json`` with model_type ``sam3`` (or
``sam3_video``, as facebook/sam3 ships it; its detector is loaded), ``*.safetensors`` weights
and the processor files (tokenizer and ``processor_config.json``). Nothing is fetched from a
hub. A LoRA adapter folder (``adapter_config.json``, written by ``rtsam train-itv``) loads on
top of its base folder: the one given, else the one recorded in the adapter.

A slice goes in as SAM 3's image processor prepares a picture: intensity window to [0, 1],
resized (bilinear, antialiased, aspect not kept) to the processor's size, normalised with its
mean and std, 3 identical channels. Each query gives a mask logit map (at the mask decoder's
resolution) and a score, sigmoid(query logit) x sigmoid(presence logit), as in
``Sam3Processor.post_process_instance_segmentation``.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InputError
from .registry import file_sha256

MODEL_TYPES = ("sam3", "sam3_video")
ADAPTER_CONFIG = "adapter_config.json"


@dataclass
class LoadedSAM3:
    model: torch.nn.Module  # Sam3Model (LoRA layers injected in place when an adapter is loaded)
    processor: object  # Sam3Processor: tokenizer and image-processor settings
    label: str  # folder names and weight hashes, for SegmentationResult.weights
    base: Path


def load_sam3(folder: str | Path, device: str = "cpu", base: str | Path | None = None) -> LoadedSAM3:
    """A SAM 3 folder, or a LoRA adapter folder on ``base`` (default: the base the adapter records)."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise InputError("SAM 3 folder not found", folder)
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"device '{device}' requested but CUDA is not available")
    adapter = folder if (folder / ADAPTER_CONFIG).is_file() else None
    base = Path(base).expanduser() if base else (_adapter_base(adapter) if adapter else folder)
    model, processor = _load_base(base)
    label = folder_label(base)
    if adapter is not None:
        from peft import PeftModel

        try:
            with peft_warnings_silenced():
                model = PeftModel.from_pretrained(model, str(adapter)).get_base_model()
        except (OSError, ValueError, KeyError, RuntimeError) as error:
            raise InputError(f"cannot load the LoRA adapter on {base} ({_first_line(error)})", adapter) from None
        label = f"{label}+{folder_label(adapter)}"
    return LoadedSAM3(model.to(device).eval(), processor, label, base)


@contextmanager
def peft_warnings_silenced():
    """peft asks for transformers' deprecated ``is_gradient_checkpointing``: a FutureWarning per call."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing", category=FutureWarning)
        yield


def _adapter_base(adapter: Path) -> Path:
    """The base folder an adapter was trained on (``base_model_name_or_path``)."""
    try:
        recorded = json.loads((adapter / ADAPTER_CONFIG).read_text()).get("base_model_name_or_path")
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InputError(f"invalid adapter config ({error})", adapter / ADAPTER_CONFIG) from None
    if not recorded or not Path(recorded).is_dir():
        raise InputError(f"the adapter's base SAM 3 folder {recorded!r} is not there: give the base folder or fix "
                         f"base_model_name_or_path in {ADAPTER_CONFIG}", adapter)
    return Path(recorded)


def check_folder(folder: Path) -> None:
    """Raise a clear error unless ``folder`` holds a SAM 3 config, weights and processor files."""
    if not folder.is_dir():
        raise InputError("SAM 3 folder not found", folder)
    config = folder / "config.json"
    if not config.is_file():
        raise InputError("not a SAM 3 model folder: no config.json", folder)
    try:
        model_type = json.loads(config.read_text()).get("model_type")
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError) as error:
        raise InputError(f"invalid config.json ({error})", config) from None
    if model_type not in MODEL_TYPES:
        raise InputError(f"not a SAM 3 model: model_type is {model_type!r} (expected one of {list(MODEL_TYPES)})",
                         config)
    if not _weight_files(folder):
        raise InputError("no model weights (*.safetensors) in the SAM 3 folder", folder)
    if not (folder / "tokenizer.json").is_file() and not (folder / "vocab.json").is_file():
        raise InputError("no tokenizer files (tokenizer.json or vocab.json) in the SAM 3 folder", folder)


def _weight_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.safetensors"))


def _load_base(folder: Path):
    import transformers

    check_folder(folder)
    if not hasattr(transformers, "Sam3Model"):
        raise InputError(f"transformers {transformers.__version__} has no SAM 3 model: pip install -U transformers")
    from transformers import Sam3Model, Sam3Processor

    path = str(folder.resolve())  # recorded as the adapter's base by peft
    try:
        model = Sam3Model.from_pretrained(path, dtype=torch.float32)
        processor = Sam3Processor.from_pretrained(path)
    except (OSError, ValueError, KeyError) as error:
        raise InputError(f"cannot load as SAM 3 ({_first_line(error)})", folder) from None
    return model, processor


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:200] if text else type(error).__name__


def folder_label(folder: Path) -> str:
    """Folder name plus the first 12 hex digits of a sha256 over its weight files."""
    digest = hashlib.sha256("".join(file_sha256(str(f)) for f in _weight_files(folder)).encode())
    return f"{folder.resolve().name}@sha256:{digest.hexdigest()[:12]}"


def text_inputs(processor, task: str, device: str) -> dict[str, torch.Tensor]:
    """Token ids and attention mask of ``task`` (SAM 3's 32-token padding)."""
    encoded = processor(text=[task], return_tensors="pt")
    return {k: encoded[k].to(device) for k in ("input_ids", "attention_mask")}


def pixel_values(slices: np.ndarray, window: tuple[float, float], processor) -> torch.Tensor:
    """(B, 3, H, W) model input of ``slices`` (B, rows, cols) under ``window``."""
    settings = processor.image_processor
    low, high = (np.float32(v) for v in window)
    x = torch.from_numpy(np.clip((np.asarray(slices, dtype=np.float32) - low) / (high - low), 0.0, 1.0))
    size = (settings.size["height"], settings.size["width"])
    x = F.interpolate(x[:, None], size=size, mode="bilinear", align_corners=False, antialias=True)
    mean = torch.tensor(settings.image_mean, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(settings.image_std, dtype=torch.float32).view(1, 3, 1, 1)
    return ((x.clamp(0.0, 1.0) - mean) / std).contiguous()


def image_features(model: torch.nn.Module, pixels: torch.Tensor):
    """SAM 3's image features of ``pixels``, only the FPN levels its decoders read (the ViT output is dropped)."""
    from transformers.models.sam3.modeling_sam3 import Sam3VisionEncoderOutput

    out = model.get_vision_features(pixel_values=pixels)
    return Sam3VisionEncoderOutput(fpn_hidden_states=out.fpn_hidden_states,
                                   fpn_position_encoding=out.fpn_position_encoding)


def split_features(features, count: int) -> list:
    """Batched image features -> one ``Sam3VisionEncoderOutput`` per slice (batch 1 each)."""
    from transformers.models.sam3.modeling_sam3 import Sam3VisionEncoderOutput

    def part(tensors, i):
        return tuple(t[i:i + 1] if t.shape[0] == count else t for t in tensors)

    return [Sam3VisionEncoderOutput(fpn_hidden_states=part(features.fpn_hidden_states, i),
                                    fpn_position_encoding=part(features.fpn_position_encoding, i))
            for i in range(count)]


def box_input(box: np.ndarray, shape: tuple[int, int]) -> torch.Tensor:
    """A pixel box (x0, y0, x1, y1 voxel centres, inclusive) as SAM 3's normalised (cx, cy, w, h)."""
    rows, cols = shape
    x0, x1 = max(box[0], 0.0), min(box[2] + 1.0, cols)  # voxel edges
    y0, y1 = max(box[1], 0.0), min(box[3] + 1.0, rows)
    return torch.tensor([[[(x0 + x1) / 2 / cols, (y0 + y1) / 2 / rows, (x1 - x0) / cols, (y1 - y0) / rows]]],
                        dtype=torch.float32)


def instance_scores(outputs) -> torch.Tensor:
    """(B, Q) query scores: sigmoid(query logit) x sigmoid(presence logit)."""
    return outputs.pred_logits.sigmoid() * outputs.presence_logits.sigmoid()


def kept_logits(outputs, threshold: float, max_instances: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, h, w) pixel-wise maximum of the mask logits of the queries scoring above ``threshold``
    (at most ``max_instances``, best first; -inf where none is kept) and (B,) best scores."""
    scores = instance_scores(outputs)
    keep = scores > threshold
    if max_instances:
        keep &= scores.argsort(dim=1, descending=True).argsort(dim=1) < max_instances
    logits = outputs.pred_masks.masked_fill(~keep[..., None, None], float("-inf"))
    return logits.amax(dim=1), scores.amax(dim=1)


def probability(logits: torch.Tensor, shape: tuple[int, int]) -> np.ndarray:
    """(B, h, w) mask logits -> (B, rows, cols) probabilities on the slice grid."""
    logits = torch.nan_to_num(logits.float(), neginf=-1e4)
    logits = F.interpolate(logits[:, None], size=shape, mode="bilinear", align_corners=False)[:, 0]
    return torch.sigmoid(logits).cpu().numpy().astype(np.float32)
