"""ITV4DCT logic end to end on real slicer-core: a generated 4DCT (real MR crop, breathing warp)
as a sequence node, litemedsam per phase, outputs checked against the generator's truth."""

import sys
from pathlib import Path

import numpy as np
import pytest

slicer = pytest.importorskip("slicer")
ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "RTInjurySAM"), str(ROOT / "ITV4DCT")]

from ITV4DCTLib import ITV4DCTLogic, copy_initial_segment, initial_segment_id, phase_nodes  # noqa: E402
from ITV4DCTLib.scenarios import run_itv_scenario  # noqa: E402
from rtsam.errors import InputError  # noqa: E402


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
