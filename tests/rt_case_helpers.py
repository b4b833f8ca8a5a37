"""The real breast RT case (dicompyler-core's example: RTDOSE, RTSTRUCT) made whole for export
tests: a CT series in the RTDOSE's patient, study and frame, and the case's structures on it."""

import numpy as np
import pydicom

from rtsam.io import read_rtdose, read_rtstruct
from rtsam.io.dicom_export import read_reference
from rtsam.itv.dicom4d import write_dicom_phases


def dose_grid_series(rt_case, folder):
    """A CT series on the RTDOSE's grid (2.5 mm pixels, 3 mm slices at the dose frames) in the dose's
    patient, study and frame of reference. The case holds one real CT slice only, so the pixels
    are zero (the tests use the geometry); on this grid a reader that samples the dose at voxel
    centres (dicompyler-core) sees exactly the exported masks."""
    dose = read_rtdose(rt_case / "rtdose.dcm")
    ct = dose.with_array(np.zeros(dose.array.shape, np.int16))
    write_dicom_phases([ct], folder, [0.0], like=pydicom.dcmread(rt_case / "rtdose.dcm", stop_before_pixels=True))
    return read_reference(folder)


def case_masks(rt_case, reference) -> dict:
    """Every structure of rtss.dcm with voxels on the series (voxel centres inside the contours)."""
    structures = read_rtstruct(rt_case / "rtss.dcm")
    masks = {s.name: structures.mask(s.name, reference.volume, allow_empty=True)
             for s in structures.structures if s.contours}
    return {name: mask for name, mask in masks.items() if mask.array.any()}
