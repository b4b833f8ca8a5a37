"""Where the real example data lives (``shared/data`` beside the checkout, or ``RTSAM_DATA_DIR``)."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import InputError

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def data_dir() -> Path:
    """The example-data folder; raises with a hint when it cannot be found."""
    candidates = [os.environ.get("RTSAM_DATA_DIR"), PROJECT_ROOT.parent / "shared" / "data", PROJECT_ROOT / "shared" / "data"]
    for candidate in candidates:
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    raise InputError("example data not found: set RTSAM_DATA_DIR or place shared/data beside the checkout")


def example(relative: str) -> Path:
    path = data_dir() / relative
    if not path.exists():
        raise InputError("example file not found", path)
    return path
