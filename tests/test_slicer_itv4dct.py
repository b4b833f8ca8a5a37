"""ITV4DCT logic end to end on real slicer-core: a generated 4DCT (real MR crop, breathing warp)
as a sequence node, litemedsam per phase, outputs checked against the generator's truth, and
exported as DICOM (RTSTRUCT or SEG: ITV, GTV_phase00...) read back voxel for voxel."""

import sys
from pathlib import Path

import numpy as np
import pytest

slicer = pytest.importorskip("slicer")
ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "RTInjurySAM"), str(ROOT / "ITV4DCT")]

from dicom_tools import dciodvfy_errors  # noqa: E402
from ITV4DCTLib import ITV4DCTLogic, copy_initial_segment, initial_segment_id, phase_nodes  # noqa: E402
from ITV4DCTLib.scenarios import run_itv_scenario  # noqa: E402
from RTSAMCommon.mrml_convert import volume_from_node  # noqa: E402
from RTSAMCommon.segments import DICOM_UIDS_ATTRIBUTE  # noqa: E402
from rtsam.errors import InputError  # noqa: E402
from rtsam.io import read_rtstruct  # noqa: E402
from rtsam.io.dicom_export import read_reference  # noqa: E402
from rtsam.itv.dicom4d import write_dicom_phases  # noqa: E402
from rtsam.resample import on_same_voxels, same_voxel_centres  # noqa: E402

NAMES = ["ITV", "GTV_phase00", "GTV_phase01"]


@pytest.fixture(scope="module")
def itv(data):
    scene = slicer.vtkMRMLScene()
    out = run_itv_scenario(scene, data / "pyradiomics/brain1_image.nrrd", data / "pyradiomics/brain1_label.nrrd", phases=2)
    out["scene"] = scene
    return out


def test_itv_matches_the_truth_and_is_the_union_of_phases(itv):
    assert itv["dice_itv"] > 0.7
    assert min(itv["dice_phases"]) > 0.6
    union = np.any([m.array for m in itv["phase_masks"]], axis=0)
    assert np.array_equal(itv["itv"].array > 0, union)
    assert itv["itv"].same_grid(itv["generated"].phases[0])  # reference phase geometry


def test_phase_masks_form_a_browsable_sequence(itv):
    outputs = itv["outputs"]
    sequence = outputs.phaseSequence
    assert sequence.GetNumberOfDataNodes() == 2 and sequence.GetIndexName() == "phase"
    assert [sequence.GetNthIndexValue(n) for n in range(2)] == ["0", "1"]
    assert outputs.browser is itv["input_browser"]  # browsed in step with the 4DCT
    proxy = outputs.browser.GetProxyNode(sequence)
    assert proxy is not None and proxy.IsA("vtkMRMLSegmentationNode")


def test_motion_table_and_plot(itv):
    outputs = itv["outputs"]
    table = outputs.table
    rows = outputs.report["per_phase"]
    assert table.GetNumberOfRows() == 2
    volumes = slicer.util.arrayFromTableColumn(table, "volume (ml)")
    assert np.allclose(volumes, [m.array.sum() * m.voxel_volume_ml for m in itv["phase_masks"]], atol=1e-3)
    offset_a = slicer.util.arrayFromTableColumn(table, "offset A (mm)")
    assert np.allclose(offset_a, [-r["offset_mm"][1] for r in rows])  # A = -P
    assert offset_a[0] == 0.0
    chart = outputs.chart
    assert chart.GetNumberOfPlotSeriesNodes() == 3
    assert chart.GetNthPlotSeriesNode(2).GetYColumnName() == "offset S (mm)"


def test_phase_nodes_from_a_list_and_bad_inputs(itv):
    scene = itv["scene"]
    volumes = [itv["outputs"].browser.GetProxyNode(itv["input_browser"].GetMasterSequenceNode())] * 2
    nodes, values = phase_nodes(volumes)
    assert nodes == volumes and values == [0.0, 1.0]
    with pytest.raises(InputError, match="sequence node or a list"):
        phase_nodes(scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode"))
    sequence = itv["input_browser"].GetMasterSequenceNode()
    with pytest.raises(InputError, match="initial prompt"):
        ITV4DCTLogic(scene).prepare(sequence, scene.AddNewNodeByClass("vtkMRMLSegmentationNode"))
    with pytest.raises(InputError, match="reference phase 5"):
        ITV4DCTLogic(scene).prepare(sequence, scene.AddNewNodeByClass("vtkMRMLSegmentationNode"), 5, task="tumour")


def test_initial_segment_copy_gets_its_own_id_and_never_piles_up(itv):
    """vtkSegmentation::CopySegmentFromSegmentation renames a copy whose ID the target already has."""
    scene = itv["scene"]
    drawn = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "drawn")
    output = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "output")
    tumour = drawn.GetSegmentation().AddEmptySegment("Segment_1", "tumour")
    output.GetSegmentation().AddEmptySegment("Segment_1", "something else")
    assert initial_segment_id(drawn, "tumour") == tumour == initial_segment_id(drawn)
    with pytest.raises(InputError, match="segment 'lung' not found in 'drawn'"):
        initial_segment_id(drawn, "lung")
    first = copy_initial_segment(drawn, tumour, output)
    assert first != "Segment_1" and output.GetSegmentation().GetSegment(first).GetName() == "tumour"
    again = copy_initial_segment(drawn, tumour, output)  # a second Apply
    names = [output.GetSegmentation().GetNthSegment(n).GetName()
             for n in range(output.GetSegmentation().GetNumberOfSegments())]
    assert sorted(names) == ["something else", "tumour"] and output.GetSegmentation().GetSegment(again)


def expected_masks(itv, grid) -> list[np.ndarray]:
    """The logic's ITV and phase masks on a grid holding the same voxels (the series' slice order)."""
    return [on_same_voxels(m, grid).array > 0 for m in [itv["itv"], *itv["phase_masks"]]]


def test_export_dicom_writes_the_reference_phase_when_its_series_is_unknown(itv, tmp_path):
    written = ITV4DCTLogic(itv["scene"]).exportDicom(itv["outputs"], tmp_path)
    assert written["path"] == str(tmp_path / "itv_rtstruct.dcm") and written["empty_phases"] == []
    series = read_reference(written["written_reference_series"])  # the reference phase as a CT series
    phase = itv["generated"].phases[0]
    assert same_voxel_centres(series.volume, phase) and not series.volume.same_grid(phase)  # slices sorted the other way
    structures = read_rtstruct(written["path"])
    assert structures.names == NAMES
    for name, expected in zip(NAMES, expected_masks(itv, series.volume)):
        assert np.array_equal(structures.mask(name, series.volume).array > 0, expected), name
    assert dciodvfy_errors(written["path"]) == [] and dciodvfy_errors(series.volume.metadata["files"][0]) == []


class DicomDatabase:
    """Slicer's application DICOM database (ctkDICOMDatabase), which slicer-core has not: instance UID -> file."""

    def __init__(self, folder):
        import pydicom

        self.files = {pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID: str(f) for f in folder.glob("*.dcm")}

    def fileForInstance(self, uid):
        return self.files.get(uid, "")


def test_export_dicom_seg_references_the_series_the_4dct_was_loaded_from(itv, tmp_path, monkeypatch):
    hd = pytest.importorskip("highdicom")
    outputs = itv["outputs"]
    node = outputs.referenceNode
    loaded = write_dicom_phases([volume_from_node(node)], tmp_path / "4dct", [0.0])  # as if loaded from DICOM
    series = read_reference(loaded)
    monkeypatch.setattr(slicer, "dicomDatabase", DicomDatabase(loaded), raising=False)
    node.SetAttribute(DICOM_UIDS_ATTRIBUTE, " ".join(d.SOPInstanceUID for d in series.datasets))
    try:
        written = ITV4DCTLogic(itv["scene"]).exportDicom(outputs, tmp_path, "seg")
    finally:
        node.RemoveAttribute(DICOM_UIDS_ATTRIBUTE)
    assert written["path"] == str(tmp_path / "itv_seg.dcm") and written["written_reference_series"] is None
    seg = hd.seg.segread(written["path"])
    assert [s.SegmentLabel for s in seg.SegmentSequence] == NAMES
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == series.datasets[0].SeriesInstanceUID
    pixels = seg.get_pixels_by_source_instance([d.SOPInstanceUID for d in series.datasets], segment_numbers=[1, 2, 3])
    for n, expected in enumerate(expected_masks(itv, series.volume)):
        assert np.array_equal(pixels[..., n] > 0, expected), NAMES[n]
    assert dciodvfy_errors(written["path"]) == []


def test_export_dicom_bad_folder_and_format(itv, tmp_path):
    logic = ITV4DCTLogic(itv["scene"])
    with pytest.raises(InputError, match="output folder does not exist"):
        logic.exportDicom(itv["outputs"], tmp_path / "missing")
    with pytest.raises(InputError, match="rtstruct or seg"):
        logic.exportDicom(itv["outputs"], tmp_path, "nifti")
    assert list(tmp_path.iterdir()) == []
