"""ITV4DCT logic without Qt: runs in Slicer and in plain Python with slicer-core."""

from .logic import ITV4DCTLogic, ITV4DCTOutputs, phase_nodes

__all__ = ["ITV4DCTLogic", "ITV4DCTOutputs", "phase_nodes"]
