"""RTInjurySAM logic without Qt: runs in Slicer and in plain Python with slicer-core."""

from .logic import RTInjurySAMLogic, RTInjurySAMResult

__all__ = ["RTInjurySAMLogic", "RTInjurySAMResult"]
