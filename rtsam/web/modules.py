"""Find the Slicer modules' Lib packages (RTInjurySAMLib, ITV4DCTLib, RTSAMCommon).

They live beside ``rtsam/`` in the source checkout (``RTInjurySAM/``, ``ITV4DCT/``), not inside the
installed ``rtsam`` package, so the web viewer needs an editable install (``pip install -e``) or a
checkout named by ``RTSAM_MODULES_DIR`` (the folder holding ``RTInjurySAM/`` and ``ITV4DCT/``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from ..errors import InputError

MODULE_FOLDERS = ("RTInjurySAM", "ITV4DCT")


def modules_root() -> Path:
    """The folder that holds RTInjurySAM/ and ITV4DCT/ (RTSAM_MODULES_DIR, else this checkout)."""
    configured = os.environ.get("RTSAM_MODULES_DIR")
    root = Path(configured) if configured else Path(__file__).resolve().parents[2]
    if not all((root / name).is_dir() for name in MODULE_FOLDERS):
        raise InputError("rtsam web needs the RTInjurySAM/ and ITV4DCT/ module folders: install rtsam from a "
                         "source checkout (pip install -e) or set RTSAM_MODULES_DIR to that checkout", root)
    return root


def add_module_paths() -> Path:
    """Put the module folders on ``sys.path`` so ``import RTInjurySAMLib`` works; returns the root."""
    root = modules_root()
    for name in reversed(MODULE_FOLDERS):
        path = str(root / name)
        if path not in sys.path:
            sys.path.insert(0, path)
    return root
