"""The paper's SAM-Med3D-compatible 3D SAM with text, box and click prompts (engine ``sam3d``)."""

from .config import Sam3DConfig
from .model import Sam3D

__all__ = ["Sam3D", "Sam3DConfig"]
