"""Atomic file output: write to a temporary file beside the target, then rename."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable

from ..errors import InputError


def write_atomically(path: str | Path, write: Callable[[str], None], suffix: str = "") -> Path:
    """Call ``write(temp)`` on a temporary file in ``path``'s folder, then rename it to ``path``;
    on failure nothing is left behind and the error propagates."""
    path = Path(path)
    if not path.parent.is_dir():
        raise InputError("output folder does not exist", path.parent)
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(handle)
    try:
        write(temp)
        os.chmod(temp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the mode open() would
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
