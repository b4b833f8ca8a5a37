"""Checkpoints in SAM-Med3D's ``sam_med3d_turbo.pth`` layout.

A file is a dict with ``model_state_dict`` (keys as ``image_encoder.blocks.0.attn.qkv.weight``,
optionally prefixed ``module.`` by DataParallel), or a bare state dict. Loading reports, in one
summary, keys missing from the file, keys the model does not know, and shape mismatches. The
branches SAM-Med3D never had (``prompt_encoder.box_embeddings.``, ``prompt_encoder.text_adapter.``)
are re-initialised cleanly from the loaded weights when absent and never count as missing.

Which of those branches are trained: the file's ``rtsam_trained_prompts`` list (written by
``save_checkpoint``; ``rtsam train`` marks box and text), or, in a file without that mark, the
branches whose tensors it holds. SAM-Med3D's own files hold neither branch: clicks only.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from ...errors import InputError
from .prompt_encoder import BRANCH_PREFIXES, NEW_BRANCHES, reset_new_branches

STATE_KEYS = ("model_state_dict", "state_dict", "model")
TRAINED_MARK = "rtsam_trained_prompts"


def _numpy_scalar():
    core = getattr(np, "_core", None) or np.core
    return core.multiarray.scalar


# What SAM-Med3D's training scripts pickle beside the weights (args, numpy metrics).
SAFE_GLOBALS = [argparse.Namespace, np.dtype, _numpy_scalar(), type(np.dtype(np.float64)),
                type(np.dtype(np.float32)), type(np.dtype(np.int64))]


@dataclass
class LoadReport:
    path: str
    loaded: int = 0
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple, tuple]] = field(default_factory=list)  # key, file shape, model shape
    initialised: list[str] = field(default_factory=list)  # new-branch keys not in the file
    trained: list[str] = field(default_factory=list)  # rtsam branches ("box", "text") the file has trained

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    @property
    def untrained(self) -> list[str]:
        return [name for name in BRANCH_PREFIXES if name not in self.trained]

    @property
    def prompts(self) -> list[str]:
        """The prompts these weights were trained for (SAM-Med3D's own: clicks only)."""
        return ["clicks", *self.trained]

    def summary(self) -> str:
        parts = [f"loaded {self.loaded} tensors from {Path(self.path).name}"]
        if self.initialised:
            parts.append(f"new branches initialised: {', '.join(_prefixes(self.initialised))}")
        parts.append(f"trained prompts: {', '.join(self.prompts)}")
        if self.untrained:
            origin = "SAM-Med3D weights without rtsam's branches" if len(self.untrained) == len(BRANCH_PREFIXES) \
                else "not trained in this file"
            parts.append(f"{' and '.join(self.untrained)} untrained ({origin})")
        if self.missing:
            parts.append(f"{len(self.missing)} missing ({_preview(self.missing)})")
        if self.unexpected:
            parts.append(f"{len(self.unexpected)} unexpected ({_preview(self.unexpected)})")
        if self.mismatched:
            shown = [f"{k} file {list(a)} vs model {list(b)}" for k, a, b in self.mismatched[:3]]
            parts.append(f"{len(self.mismatched)} shape mismatches ({'; '.join(shown)})")
        return "; ".join(parts)


def _preview(keys: list[str], n: int = 3) -> str:
    return ", ".join(keys[:n]) + (", ..." if len(keys) > n else "")


def _prefixes(keys: list[str]) -> list[str]:
    return [p.rstrip(".") for p in NEW_BRANCHES if any(k.startswith(p) for k in keys)]


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The model state dict of a checkpoint file, without any ``module.`` prefix."""
    return read_checkpoint(path)[0]


def read_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], list[str] | None]:
    """(state dict without ``module.`` prefixes, the file's trained-prompts mark or None)."""
    path = Path(path)
    if not path.is_file():
        raise InputError("checkpoint not found", path)
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for corrupt or foreign files
        raise InputError(f"cannot read checkpoint ({str(error).strip().splitlines()[0][:200]})", path) from None
    mark = raw.get(TRAINED_MARK) if isinstance(raw, dict) else None
    if isinstance(raw, dict):
        raw = next((raw[k] for k in STATE_KEYS if isinstance(raw.get(k), dict)), raw)
    if not isinstance(raw, dict) or not all(isinstance(v, torch.Tensor) for v in raw.values()):
        raise InputError("checkpoint holds no model state dict (expected 'model_state_dict')", path)
    return {k.removeprefix("module."): v for k, v in raw.items()}, None if mark is None else list(mark)


def load_checkpoint(model: torch.nn.Module, path: str | Path, strict: bool = False) -> LoadReport:
    """Load SAM-Med3D-layout weights into ``model``; ``strict`` raises on anything but new branches."""
    state, trained = read_checkpoint(path)
    return load_state_dict(model, state, path, strict, trained)


def load_state_dict(model: torch.nn.Module, state: dict[str, torch.Tensor], path: str | Path,
                    strict: bool = False, trained: list[str] | None = None) -> LoadReport:
    """``load_checkpoint`` for a state dict (and trained-prompts mark) already read from ``path``."""
    own = model.state_dict()
    report = LoadReport(str(path))
    usable = {}
    for key, value in state.items():
        if key not in own:
            report.unexpected.append(key)
        elif tuple(value.shape) != tuple(own[key].shape):
            report.mismatched.append((key, tuple(value.shape), tuple(own[key].shape)))
        else:
            usable[key] = value
    absent = [k for k in own if k not in state]
    report.initialised = [k for k in absent if k.startswith(NEW_BRANCHES)]
    report.missing = [k for k in absent if not k.startswith(NEW_BRANCHES)]
    report.trained = [name for name, prefix in BRANCH_PREFIXES.items()
                      if any(k.startswith(prefix) for k in usable) and (trained is None or name in trained)]
    if strict and not report.ok:
        raise InputError(f"checkpoint does not match the sam3d model: {report.summary()}", path)
    model.load_state_dict(usable, strict=False)
    report.loaded = len(usable)
    if report.initialised and hasattr(model, "prompt_encoder"):
        box, text = (any(k.startswith(p) for k in report.initialised) for p in NEW_BRANCHES)
        reset_new_branches(model.prompt_encoder, box=box, text=text)
    return report


def save_checkpoint(model: torch.nn.Module, path: str | Path, trained_prompts: tuple[str, ...] = (), **extra) -> Path:
    """Write ``{"model_state_dict": ..., "sam3d_config": ..., TRAINED_MARK: trained_prompts, **extra}``
    (SAM-Med3D layout); ``trained_prompts`` names the rtsam branches (box, text) training fitted."""
    path = Path(path)
    unknown = set(trained_prompts) - set(BRANCH_PREFIXES)
    if unknown:
        raise ValueError(f"unknown prompt branches {sorted(unknown)}; known: {', '.join(BRANCH_PREFIXES)}")
    payload = {"model_state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
               TRAINED_MARK: list(trained_prompts), **extra}
    if hasattr(model, "config"):
        payload["sam3d_config"] = asdict(model.config)
    torch.save(payload, path)
    return path


def text_dim_of(state: dict[str, torch.Tensor]) -> int | None:
    """Width of the text encoder a checkpoint's text adapter was trained with, if it has one."""
    weight = state.get("prompt_encoder.text_adapter.0.weight")
    return None if weight is None else int(weight.shape[1])
