"""ITV4DCT logic without Qt: runs in Slicer and in plain Python with slicer-core."""

from .logic import ITV4DCTLogic, ITV4DCTOutputs, copy_initial_segment, initial_segment_id, phase_nodes

__all__ = ["ITV4DCTLogic", "ITV4DCTOutputs", "copy_initial_segment", "initial_segment_id", "phase_nodes"]
