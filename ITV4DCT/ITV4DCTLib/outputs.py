"""ITV4DCT outputs in MRML: a browsable sequence of per-phase segmentations, a motion table
(RAS, as Slicer shows coordinates) and a plot of the tumour trajectory."""

from __future__ import annotations

import numpy as np
import slicer
import vtk

from rtsam.volume import Volume, lps_to_ras

from RTSAMCommon.mrml_convert import set_segment_mask

PHASE_COLOR = (0.2, 0.8, 0.2)
AXES = ("R", "A", "S")


def add_phase_sequence(scene, masks: list[Volume], labels: list[str], input_sequence, name: str):
    """A sequence of segmentation nodes (one per phase), browsed with the input 4DCT when there is one."""
    sequence = scene.AddNewNodeByClass("vtkMRMLSequenceNode", f"{name} phases")
    if input_sequence is not None:
        sequence.SetIndexName(input_sequence.GetIndexName())
        sequence.SetIndexUnit(input_sequence.GetIndexUnit())
    for mask, label in zip(masks, labels):
        node = slicer.vtkMRMLSegmentationNode()
        node.SetName(f"{name} phase {label}")
        set_segment_mask(node, mask, f"Phase {label}", PHASE_COLOR)
        sequence.SetDataNodeAtValue(node, label if input_sequence is None else _input_value(input_sequence, label))
    browser = _browser_for(scene, input_sequence) or scene.AddNewNodeByClass("vtkMRMLSequenceBrowserNode", f"{name} browser")
    if browser.GetMasterSequenceNode() is None:
        browser.SetAndObserveMasterSequenceNodeID(sequence.GetID())
    else:
        browser.AddSynchronizedSequenceNodeID(sequence.GetID())
    logic = slicer.vtkSlicerSequencesLogic()
    logic.SetMRMLScene(scene)
    logic.UpdateProxyNodesFromSequences(browser)
    return sequence, browser


def _input_value(input_sequence, label: str) -> str:
    """The input sequence's own index value text for a phase label (keeps browsing in step)."""
    for n in range(input_sequence.GetNumberOfDataNodes()):
        value = input_sequence.GetNthIndexValue(n)
        try:
            if f"{float(value):g}" == label:
                return value
        except ValueError:
            break
    return label


def _browser_for(scene, sequence):
    if sequence is None:
        return None
    browsers = scene.GetNodesByClass("vtkMRMLSequenceBrowserNode")
    for n in range(browsers.GetNumberOfItems()):
        browser = browsers.GetItemAsObject(n)
        if browser.IsSynchronizedSequenceNode(sequence.GetID(), True):
            return browser
    return None


def add_motion_table(scene, rows: list[dict], values: list[float], name: str):
    """Per phase: value, volume (ml), centroid and offset from the reference phase (RAS mm)."""
    columns = {"phase": np.asarray(values, float), "volume (ml)": np.array([r["volume_ml"] for r in rows], float)}
    centroids = np.array([lps_to_ras(r["centroid_lps_mm"]) if r["centroid_lps_mm"] else [np.nan] * 3 for r in rows])
    offsets = np.array([lps_to_ras(r["offset_mm"]) if r["offset_mm"] else [np.nan] * 3 for r in rows])
    for axis, label in enumerate(AXES):
        columns[f"centroid {label} (mm)"] = centroids[:, axis]
    for axis, label in enumerate(AXES):
        columns[f"offset {label} (mm)"] = offsets[:, axis]
    columns["displacement (mm)"] = np.linalg.norm(offsets, axis=1)
    table = scene.AddNewNodeByClass("vtkMRMLTableNode", name)
    for title, data in columns.items():
        array = vtk.vtkDoubleArray()
        array.SetName(title)
        for value in data:
            array.InsertNextValue(float(value))
        table.AddColumn(array)
    return table


def add_motion_plot(scene, table, name: str):
    """Offsets along R, A, S against phase, as lines in one chart."""
    chart = scene.AddNewNodeByClass("vtkMRMLPlotChartNode", name)
    chart.SetTitle("Tumour centroid offset from the reference phase")
    chart.SetXAxisTitle("phase")
    chart.SetYAxisTitle("offset (mm)")
    for label, color in zip(AXES, ((0.9, 0.2, 0.2), (0.2, 0.7, 0.2), (0.2, 0.4, 0.9))):
        series = scene.AddNewNodeByClass("vtkMRMLPlotSeriesNode", f"{name} {label}")
        series.SetAndObserveTableNodeID(table.GetID())
        series.SetXColumnName("phase")
        series.SetYColumnName(f"offset {label} (mm)")
        series.SetPlotType(series.PlotTypeScatter)
        series.SetMarkerStyle(series.MarkerStyleCircle)
        series.SetColor(*color)
        chart.AddAndObservePlotSeriesNodeID(series.GetID())
    return chart
