"""MRML <-> rtsam conversion on real slicer-core: exact geometry, RAS <-> LPS, segments, markups."""

import sys
from pathlib import Path

import numpy as np
import pytest
import vtk

slicer = pytest.importorskip("slicer")
ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "RTInjurySAM"), str(ROOT / "ITV4DCT")]

from conftest import oblique_direction  # noqa: E402
from RTSAMCommon import mrml_convert as mc  # noqa: E402
from RTSAMCommon.segments import export_segmentation_nrrd, write_result_segment  # noqa: E402
from rtsam.errors import InputError  # noqa: E402
from rtsam.io import read_image  # noqa: E402
from rtsam.volume import Volume  # noqa: E402


@pytest.fixture
def scene():
    scene = slicer.vtkMRMLScene()
    mc.prepare_scene(scene)
    return scene


@pytest.fixture
def oblique(rng):
    array = rng.integers(-1000, 2000, (6, 7, 9)).astype(np.int16)
    return Volume(array, spacing=(0.7, 1.3, 3.0), origin=(12.5, -40.0, 7.0), direction=oblique_direction())


def test_volume_round_trip_keeps_exact_geometry(scene, oblique):
    node = mc.add_volume_node(scene, oblique, "oblique")
    back = mc.volume_from_node(node)
    assert back.array.dtype == oblique.array.dtype and np.array_equal(back.array, oblique.array)
    assert np.allclose(back.spacing, oblique.spacing, atol=1e-9)
    assert np.allclose(back.origin, oblique.origin, atol=1e-9)
    assert np.allclose(back.direction, oblique.direction, atol=1e-12)


def test_slicer_sees_lps_voxels_at_flipped_ras(scene, oblique):
    """Slicer's own IJK->RAS of a voxel is the LPS position with x and y negated."""
    node = mc.add_volume_node(scene, oblique, "oblique")
    ijk = np.array([3, 5, 2])
    matrix = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(matrix)
    ras = np.array(matrix.MultiplyPoint([*ijk, 1.0])[:3])
    lps = oblique.ijk_to_lps(ijk)
    assert np.allclose(ras, [-lps[0], -lps[1], lps[2]], atol=1e-9)


def test_parent_transform_is_applied(scene, oblique):
    node = mc.add_volume_node(scene, oblique, "moved")
    transform = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
    shift = vtk.vtkMatrix4x4()
    shift.SetElement(0, 3, 10.0)  # +10 mm towards Right = -10 mm in L
    transform.SetMatrixTransformToParent(shift)
    node.SetAndObserveTransformNodeID(transform.GetID())
    assert np.allclose(mc.volume_from_node(node).origin, np.add(oblique.origin, [-10.0, 0, 0]))


def test_real_label_as_segment_round_trip(scene, data):
    label = read_image(data / "pyradiomics" / "brain1_label.nrrd")
    mask = label.with_array((label.array > 0).astype(np.uint8))
    assert not np.allclose(mask.direction, np.eye(3))  # brain1 is stored with a flipped j axis
    segmentation = scene.AddNewNodeByClass("vtkMRMLSegmentationNode")
    segment_id = mc.set_segment_mask(segmentation, mask, "Tumour", (1, 0, 0))
    assert np.array_equal(mc.segment_mask(segmentation, segment_id, mask).array, mask.array)
    # the segment's centre in world RAS is the mask's LPS centroid flipped
    centre_ras = np.array(segmentation.GetSegmentCenterRAS(segment_id))
    voxel = np.argwhere(mask.array > 0)[:, ::-1]
    centroid_lps = mask.ijk_to_lps(voxel).mean(axis=0)
    assert np.allclose(centre_ras, [-centroid_lps[0], -centroid_lps[1], centroid_lps[2]], atol=max(mask.spacing))
    # replacing the same segment keeps one segment
    mc.set_segment_mask(segmentation, mask.with_array(1 - mask.array), "Tumour")
    assert segmentation.GetSegmentation().GetNumberOfSegments() == 1


def test_segment_resampled_to_an_oblique_grid(scene, oblique):
    mask = oblique.with_array(np.zeros(oblique.array.shape, np.uint8))
    mask.array[2:4, 3:6, 4:7] = 1
    segmentation = scene.AddNewNodeByClass("vtkMRMLSegmentationNode")
    segment_id = mc.set_segment_mask(segmentation, mask, "Box")
    assert np.array_equal(mc.segment_mask(segmentation, segment_id, oblique).array, mask.array)


def test_markups_and_roi_in_lps(scene, oblique):
    points = oblique.ijk_to_lps([[1, 2, 3], [4, 0, 1]])
    node = mc.add_points(scene, points, "clicks")
    ras = slicer.util.arrayFromMarkupsControlPoints(node)
    assert np.allclose(ras, points * [-1, -1, 1])
    assert np.allclose(mc.points_lps(node), points)
    roi = scene.AddNewNodeByClass("vtkMRMLMarkupsROINode")
    box = np.array([[-5.0, 10.0, -2.0], [15.0, 30.0, 8.0]])
    mc.set_roi_box(roi, box)
    assert np.allclose(mc.roi_box_lps(roi), box)
    assert np.allclose(roi.GetCenter(), [-5.0, -20.0, 3.0])


def test_export_seg_nrrd_keeps_geometry_names_and_terminology(scene, oblique, tmp_path):
    mask = oblique.with_array((oblique.array > 500).astype(np.uint8))
    segmentation = scene.AddNewNodeByClass("vtkMRMLSegmentationNode")
    write_result_segment(segmentation, mask, "cerebral edema", {"quality": 0.8, "engine": "x"})
    path = export_segmentation_nrrd(segmentation, tmp_path / "out.seg.nrrd")
    loaded = scene.AddNewNodeByClass("vtkMRMLSegmentationNode")
    storage = slicer.vtkMRMLSegmentationStorageNode()
    storage.SetFileName(str(path))
    assert storage.ReadData(loaded)
    segment = loaded.GetSegmentation().GetNthSegment(0)
    assert segment.GetName() == "Cerebral edema"
    assert "SCT^79654002^Edema" in segment.GetTerminology() and "SCT^12738006^Brain" in segment.GetTerminology()
    loaded_id = loaded.GetSegmentation().GetNthSegmentID(0)
    assert np.array_equal(mc.segment_mask(loaded, loaded_id, oblique).array, mask.array)
    with pytest.raises(InputError, match="seg.nrrd"):
        export_segmentation_nrrd(segmentation, tmp_path / "out.nrrd")


def test_ui_files_are_valid_designer_xml():
    import xml.etree.ElementTree as ET

    for ui in (ROOT / "RTInjurySAM/Resources/UI/RTInjurySAM.ui", ROOT / "ITV4DCT/Resources/UI/ITV4DCT.ui"):
        root = ET.parse(ui).getroot()
        assert root.tag == "ui" and root.get("version") == "4.0"
        names = [w.get("name") for w in root.iter("widget")]
        assert len(names) == len(set(names)), f"duplicate widget names in {ui.name}"
        assert {"applyButton", "cancelButton", "progressBar", "testConnectionButton"} <= set(names)
        declared = {c.findtext("class") for c in root.iter("customwidget")}
        used = {w.get("class") for w in root.iter("widget")}
        assert {c for c in used if c.startswith(("q", "ctk"))} <= declared
        for connection in root.iter("connection"):
            assert connection.findtext("receiver") in names


def test_ui_parameter_names_are_parameter_node_fields():
    """Every widget bound with SlicerParameterName names a field of the module's parameter node."""
    import ast
    import xml.etree.ElementTree as ET

    for module in ("RTInjurySAM", "ITV4DCT"):
        tree = ast.parse((ROOT / module / f"{module}.py").read_text())
        (node_class,) = [c for c in tree.body if isinstance(c, ast.ClassDef) and c.name == f"{module}ParameterNode"]
        fields = {a.target.id for a in node_class.body if isinstance(a, ast.AnnAssign)}
        root = ET.parse(ROOT / module / "Resources/UI" / f"{module}.ui").getroot()
        bound = {p.findtext("string") for p in root.iter("property") if p.get("name") == "SlicerParameterName"}
        assert bound and bound <= fields, f"{module}.ui binds {sorted(bound - fields)}"
