"""The real breast RT case (dicompyler-core's example: RTDOSE, RTSTRUCT, one CT slice) made
whole for export tests: a CT series on its CT geometry, in its patient, study and frame."""

import numpy as np
import pydicom

from rtsam.io import read_rtstruct
from rtsam.io.dicom_export import read_reference
from rtsam.itv.dicom4d import write_dicom_phases
from rtsam.volume import Volume

STRUCTURES = ["Breast", "Heart", "Lt Lung", "Tumor Bed", "Nodes", "Scar"]


def breast_ct_series(rt_case, folder):
    """CT slices on the case's CT grid (ct.0.dcm: 512x512 pixels of 1.074 mm; 98 slices 3 mm apart
    at the planes of rtss.dcm's contours) with the RTDOSE's patient, study and frame of reference.
    Only ct.0.dcm is real: every slice repeats its pixels (the tests use the geometry only)."""
    ct = pydicom.dcmread(rt_case / "ct.0.dcm")
    planes = sorted({float(c.ContourData[2]) for roi in pydicom.dcmread(rt_case / "rtss.dcm").ROIContourSequence
                     for c in roi.get("ContourSequence", [])})
    hu = (ct.pixel_array * float(ct.RescaleSlope) + float(ct.RescaleIntercept)).astype(np.int16)
    spacing = (float(ct.PixelSpacing[1]), float(ct.PixelSpacing[0]), float(np.diff(planes).mean()))
    x, y, _ = map(float, ct.ImagePositionPatient)
    volume = Volume(np.repeat(hu[None], len(planes), axis=0), spacing, (x, y, planes[0]), np.eye(3))
    write_dicom_phases([volume], folder, [0.0], like=pydicom.dcmread(rt_case / "rtdose.dcm", stop_before_pixels=True))
    return read_reference(folder)


def breast_masks(rt_case, reference, names=STRUCTURES) -> dict:
    """The case's structures rasterised on the series (voxel centres inside the contours)."""
    structures = read_rtstruct(rt_case / "rtss.dcm")
    return {name: structures.mask(name, reference.volume) for name in names}
