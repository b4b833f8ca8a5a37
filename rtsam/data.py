"""Where the real example data lives.

Looked up in order: ``RTSAM_DATA_DIR``, ``shared/data`` beside the checkout, the user cache
(``rtsam examples fetch``). A file that none of them holds is fetched into the cache when the
manifest lists it (``rtsam/examples/manifest.json``); otherwise, or when the package index
cannot be reached, one line says what to do.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import InputError

PROJECT_ROOT = Path(__file__).resolve().parents[1]
NOT_FETCHABLE = {"invesalius_head_ct": "the Debian package invesalius-examples"}


def search_dirs() -> list[Path]:
    """The folders searched for example files, in order."""
    from .examples import cache_dir

    env = os.environ.get("RTSAM_DATA_DIR")
    beside = [PROJECT_ROOT.parent / "shared" / "data", PROJECT_ROOT / "shared" / "data"]
    return ([Path(env)] if env else []) + beside + [cache_dir()]


def find_example(relative: str) -> Path | None:
    """The first searched folder's copy of ``relative``, without fetching."""
    return next((d / relative for d in search_dirs() if (d / relative).is_file()), None)


def data_dir() -> Path:
    """The first searched folder holding every fetchable example file; else they are fetched into the cache."""
    from .examples import cache_dir, fetch_examples, manifest

    names = list(manifest()["files"])
    for folder in search_dirs():
        if all((folder / name).is_file() for name in names):
            return folder
    fetch_examples(cache_dir())
    return cache_dir()


def example(relative: str) -> Path:
    """One example file (e.g. ``pyradiomics/lung2_image.nrrd``), fetched into the cache when needed."""
    from .examples import cache_dir, fetch_examples, manifest

    found = find_example(relative)
    if found is not None:
        return found
    if relative in manifest()["files"]:
        fetch_examples(cache_dir())
        return cache_dir() / relative
    folders = ", ".join(str(d) for d in search_dirs())
    origin = NOT_FETCHABLE.get(relative.split("/", 1)[0])
    hint = f"it comes from {origin} and cannot be fetched" if origin else "it is not an example file"
    raise InputError(f"example file not found in {folders}: {hint} (set RTSAM_DATA_DIR to a folder holding it)",
                     relative)
