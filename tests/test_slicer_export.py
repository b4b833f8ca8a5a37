"""Segmentation export from Slicer (real slicer-core) to DICOM SEG and RTSTRUCT: the real brain1
series (axial and oblique) as a volume node, segments with presets, tags and colours, read back."""

import sys
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest

slicer = pytest.importorskip("slicer")
ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "RTInjurySAM")]

from conftest import oblique_direction  # noqa: E402
from RTSAMCommon import mrml_convert as mc  # noqa: E402
from RTSAMCommon.segments import (export_format, export_segmentation_dicom, reference_dicom_file,  # noqa: E402
                                  terminology_codes, write_result_segment)
from test_dicom_export import edited_label, right_handed  # noqa: E402
from rtsam.errors import InputError  # noqa: E402
from rtsam.io import read_image, read_rtstruct  # noqa: E402
from rtsam.itv.dicom4d import write_dicom_phases  # noqa: E402
from rtsam.volume import Volume  # noqa: E402

SUMMARY = {"engine": "litemedsam", "weights": "lite_medsam.pth@sha256:0123abcd", "quality": 0.9}


@pytest.fixture(scope="module", params=["axial", "oblique"])
def loaded(request, data, tmp_path_factory):
    """(scene, volume node of the DICOM series, series folder, segmentation node, expected masks)."""
    image = right_handed(read_image(data / "pyradiomics/brain1_image.nrrd"))
    label = (right_handed(read_image(data / "pyradiomics/brain1_label.nrrd")).array > 0).astype(np.uint8)
    if request.param == "oblique":
        image = Volume(image.array, image.spacing, (10.0, -30.0, 5.0), oblique_direction(30))
    folder = tmp_path_factory.mktemp(request.param) / "series"
    write_dicom_phases([image], folder, [0.0])
    series = read_image(folder)
    scene = slicer.vtkMRMLScene()
    mc.prepare_scene(scene)
    node = mc.add_volume_node(scene, series, "brain1")
    segmentation = scene.AddNewNodeByClass("vtkMRMLSegmentationNode")
    masks = {"Cerebral radiation necrosis": label, "Tumour": edited_label(label)}
    write_result_segment(segmentation, series.with_array(label), "cerebral radiation necrosis", SUMMARY)
    mc.set_segment_mask(segmentation, series.with_array(masks["Tumour"]), "Tumour", (0.0, 0.5, 1.0))
    return scene, node, folder, segmentation, masks


def test_rtstruct_export_reads_back_exactly(loaded, tmp_path):
    scene, node, folder, segmentation, masks = loaded
    path = export_segmentation_dicom(segmentation, node, folder, tmp_path / "rtss.dcm", "rtstruct")
    structures = read_rtstruct(path)
    series = read_image(folder)
    assert structures.names == list(masks)
    for name, expected in masks.items():
        assert np.array_equal(structures.mask(name, series).array, expected), name
    assert structures.frame_of_reference_uid == series.frame_of_reference_uid


def test_dicom_seg_export_keeps_names_colours_codes_and_engine(loaded, tmp_path):
    scene, node, folder, segmentation, masks = loaded
    first_file = sorted(folder.iterdir())[0]  # a slice file of the series works as the reference too
    seg = hd.seg.segread(export_segmentation_dicom(segmentation, node, first_file, tmp_path / "seg.dcm", "seg"))
    series = read_image(folder)
    uids = [pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID for f in series.metadata["files"]]
    pixels = seg.get_pixels_by_source_instance(uids, segment_numbers=[1, 2])
    for n, expected in enumerate(masks.values()):
        assert np.array_equal(pixels[..., n], expected)
    necrosis, tumour = seg.SegmentSequence
    assert (necrosis.SegmentLabel, tumour.SegmentLabel) == tuple(masks)
    assert necrosis.SegmentedPropertyTypeCodeSequence[0].CodeValue == "6574001"  # from the segment's terminology
    assert necrosis.SegmentAlgorithmType == "SEMIAUTOMATIC"
    assert necrosis.SegmentationAlgorithmIdentificationSequence[0].AlgorithmVersion == SUMMARY["weights"]
    assert tumour.SegmentAlgorithmType == "MANUAL"
    assert tumour.SegmentedPropertyTypeCodeSequence[0].CodeValue == "85756007"  # Slicer's default terminology, Tissue
    rgb = hd.color.CIELabColor.from_dicom_value(tuple(tumour.RecommendedDisplayCIELabValue)).to_rgb()
    assert np.allclose(rgb, (0, 128, 255), atol=2)


def test_reference_must_be_the_volume_series(loaded, tmp_path):
    scene, node, folder, segmentation, masks = loaded
    cropped = mc.volume_from_node(node)
    cropped = Volume(cropped.array[2:], cropped.spacing, cropped.ijk_to_lps([0, 0, 2]), cropped.direction)
    other = mc.add_volume_node(scene, cropped, "cropped")
    with pytest.raises(InputError, match="not on the grid of the reference series"):
        export_segmentation_dicom(segmentation, other, folder, tmp_path / "seg.dcm", "seg")
    empty = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "empty")
    with pytest.raises(InputError, match="no segments"):
        export_segmentation_dicom(empty, node, folder, tmp_path / "seg.dcm", "rtstruct")
    with pytest.raises(InputError, match="'seg' or 'rtstruct'"):
        export_segmentation_dicom(segmentation, node, folder, tmp_path / "seg.dcm", "nrrd")


def test_export_format_from_suffix_and_filter():
    assert export_format("/a/b.seg.nrrd", "DICOM SEG (*.dcm)") == "nrrd"
    assert export_format("/a/b.dcm", "DICOM RTSTRUCT (*.dcm)") == "rtstruct"
    assert export_format("/a/b.DCM", "DICOM SEG (*.dcm)") == "seg"
    with pytest.raises(InputError, match="seg.nrrd"):
        export_format("/a/b.nii.gz", "")


def test_reference_file_from_the_dicom_database(loaded, monkeypatch):
    scene, node, folder, segmentation, masks = loaded
    assert reference_dicom_file(node) is None  # not loaded through Slicer's DICOM module
    files = {"1.2.3": str(folder / "a.dcm")}

    class Database:  # the one call made on ctkDICOMDatabase
        def fileForInstance(self, uid):
            return files.get(uid, "")

    monkeypatch.setattr(slicer, "dicomDatabase", Database(), raising=False)
    node.SetAttribute("DICOM.instanceUIDs", "1.2.3 1.2.4")
    try:
        assert reference_dicom_file(node) == files["1.2.3"]
    finally:
        node.RemoveAttribute("DICOM.instanceUIDs")


def test_terminology_codes_of_a_slicer_entry():
    entry = ("Segmentation category and type - 3D Slicer General Anatomy list~SCT^49755003^Morphologically Altered "
             "Structure~SCT^79654002^Edema~^^~Anatomic codes - DICOM master list~SCT^12738006^Brain~^^")
    assert terminology_codes(entry) == {"category_code": "SCT^49755003^Morphologically Altered Structure",
                                        "type_code": "SCT^79654002^Edema", "region_code": "SCT^12738006^Brain"}
    assert terminology_codes("") == {} and terminology_codes(None) == {}
