"""Reading and writing images, DICOM series, RTDOSE, RTSTRUCT and labels (all geometry in LPS mm)."""

from .dicom import read_dataset
from .images import read_image, write_image
from .labels import read_label
from .rtdose import read_rtdose
from .rtstruct import Structure, StructureSet, read_rtstruct

__all__ = ["Structure", "StructureSet", "read_dataset", "read_image", "read_label", "read_rtdose", "read_rtstruct",
           "write_image"]
