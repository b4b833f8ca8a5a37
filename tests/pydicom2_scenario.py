"""Run under pydicom 2.4.4 (Slicer 5.10's bundled version) by test_slicer_pydicom2.py: DICOM series
write/read, RTSTRUCT export from a Slicer segmentation, RTDOSE read, DICOM SEG refused with a reason.
Prints one JSON line of measurements."""

import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "RTInjurySAM"), str(ROOT / "ITV4DCT"), str(ROOT)]

import numpy as np  # noqa: E402
import pydicom  # noqa: E402
import slicer  # noqa: E402

from RTSAMCommon import mrml_convert as mc  # noqa: E402
from RTSAMCommon.segments import export_segmentation_dicom, write_result_segment  # noqa: E402
from rtsam.data import data_dir  # noqa: E402
from rtsam.errors import InputError  # noqa: E402
from rtsam.io import read_image, read_rtdose, read_rtstruct  # noqa: E402
from rtsam.itv.dicom4d import write_dicom_phases  # noqa: E402

image = read_image(data_dir() / "pyradiomics/brain1_image.nrrd")
label = (read_image(data_dir() / "pyradiomics/brain1_label.nrrd").array > 0).astype(np.uint8)
folder = Path(tempfile.mkdtemp()) / "series"
write_dicom_phases([image], folder, [0.0])
series = read_image(folder)
scene = slicer.vtkMRMLScene()
mc.prepare_scene(scene)
node = mc.add_volume_node(scene, series, "brain1")
segmentation = scene.AddNewNodeByClass("vtkMRMLSegmentationNode")
write_result_segment(segmentation, series.with_array(label), "cerebral radiation necrosis", {})
structures = read_rtstruct(export_segmentation_dicom(segmentation, node, folder, folder.parent / "rtss.dcm", "rtstruct"))
try:
    export_segmentation_dicom(segmentation, node, folder, folder.parent / "seg.dcm", "seg")
    refusal = None
except InputError as error:
    refusal = str(error)
print(json.dumps({"pydicom": pydicom.__version__, "series_shape_equal": series.array.shape == image.array.shape,
                  "rtstruct_equal": bool(np.array_equal(structures.mask(structures.names[0], series).array, label)),
                  "seg_refusal": refusal,
                  "dose_max": float(read_rtdose(data_dir() / "dicompyler_breast_rt/rtdose.dcm").array.max())}))
