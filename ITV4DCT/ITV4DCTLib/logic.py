"""ITV4DCT headless logic: a 4DCT in MRML -> per-phase masks, ITV segment, table and plot.

``prepare`` reads the nodes (main thread), ``compute`` runs rtsam.itv through the backend (a
server job for the local and remote backends: no MRML, runs in a worker thread), ``apply``
writes the outputs. ``process`` does all three.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import slicer

from rtsam.engines.base import Prompt
from rtsam.errors import InputError
from rtsam.volume import Volume

from RTSAMCommon.backends import make_backend
from RTSAMCommon.mrml_convert import prepare_scene, roi_box_lps, segment_mask, set_segment_mask, volume_from_node
from RTSAMCommon.segments import segment_tag

from .dicom_export import export_dicom
from .outputs import add_motion_plot, add_motion_table, add_phase_sequence

ITV_COLOR = (1.0, 0.4, 0.0)
COPY_TAG = "RTSAM.copiedFrom"  # "<source node ID>/<segment ID>" on the initial segment's copy


@dataclass
class ITVRequest:
    phases: object  # rtsam.itv.phases.Phases
    prompt: Prompt | None
    initMask: Volume | None
    sequenceNode: object  # the input sequence, or None for a list of volumes
    segmentationNode: object
    referenceNode: object


@dataclass
class ITV4DCTOutputs:
    itvSegmentId: str
    phaseSequence: object  # vtkMRMLSequenceNode of segmentation nodes
    browser: object  # vtkMRMLSequenceBrowserNode showing it
    table: object  # vtkMRMLTableNode
    chart: object  # vtkMRMLPlotChartNode
    report: dict
    segmentation: object  # the output vtkMRMLSegmentationNode (holds the ITV segment)
    referenceNode: object  # the reference phase's volume node (the ITV's geometry)


def phase_nodes(source) -> tuple[list, list[float]]:
    """Volume nodes and their phase values from a sequence node or a list of volume nodes."""
    if isinstance(source, (list, tuple)):
        return list(source), [float(n) for n in range(len(source))]
    if source is None or not source.IsA("vtkMRMLSequenceNode"):
        raise InputError("give a volume sequence node or a list of volume nodes")
    nodes = [source.GetNthDataNode(n) for n in range(source.GetNumberOfDataNodes())]
    if not all(node is not None and node.IsA("vtkMRMLScalarVolumeNode") for node in nodes):
        raise InputError(f"sequence '{source.GetName()}' does not hold scalar volumes")
    values = []
    for n in range(len(nodes)):
        try:
            values.append(float(source.GetNthIndexValue(n)))
        except ValueError:
            values.append(float(n))
    return nodes, values


def copy_initial_segment(source, segmentId: str, target) -> str:
    """Copy a segment into ``target`` (segmentation nodes) and return the copy's ID, which Slicer makes
    unique when ``target`` already has ``segmentId`` (vtkSegmentation::CopySegmentFromSegmentation).
    The copy of an earlier Apply from the same segment is replaced, so copies never pile up."""
    origin = f"{source.GetID()}/{segmentId}"
    segmentation = target.GetSegmentation()
    for oldId in list(segmentation.GetSegmentIDs()):
        if segment_tag(segmentation.GetSegment(oldId), COPY_TAG) == origin:
            segmentation.RemoveSegment(oldId)
    before = set(segmentation.GetSegmentIDs())
    if not segmentation.CopySegmentFromSegmentation(source.GetSegmentation(), segmentId):
        raise InputError(f"could not copy segment '{segmentId}' of '{source.GetName()}' into '{target.GetName()}'")
    (copyId,) = set(segmentation.GetSegmentIDs()) - before
    segmentation.GetSegment(copyId).SetTag(COPY_TAG, origin)
    return copyId


def initial_segment_id(source, name: str = "") -> str:
    """The segment named ``name`` in a segmentation node (the first segment when ``name`` is empty)."""
    segmentation = source.GetSegmentation()
    segmentId = segmentation.GetSegmentIdBySegmentName(name) if name else segmentation.GetNthSegmentID(0)
    if not segmentId:
        raise InputError(f"segment '{name}' not found in '{source.GetName()}'" if name
                         else f"'{source.GetName()}' has no segments")
    return segmentId


class ITV4DCTLogic:
    """ITV4DCT logic on ``scene`` (default ``slicer.mrmlScene``) with an injected backend."""

    def __init__(self, scene=None, backend=None):
        self.scene = scene if scene is not None else slicer.mrmlScene
        self.backend = backend or make_backend("local")
        prepare_scene(self.scene)

    def process(self, source, segmentationNode, referencePhase=0, initSegmentId=None, roiNode=None, task=None,
                engine=None, progress=None, cancel=None, propagation="rigid") -> ITV4DCTOutputs:
        """Segment every phase from the prompt on the reference phase; store ITV, phases, table, plot."""
        request = self.prepare(source, segmentationNode, referencePhase, initSegmentId, roiNode, task)
        return self.apply(request, self.compute(request, engine, progress, cancel, propagation))

    def prepare(self, source, segmentationNode, referencePhase=0, initSegmentId=None, roiNode=None, task=None):
        from rtsam.itv.phases import make_phases

        if segmentationNode is None:
            raise InputError("select an output segmentation")
        nodes, values = phase_nodes(source)
        label = source.GetName() if hasattr(source, "GetName") else f"{len(nodes)} volumes"
        phases = make_phases([volume_from_node(n) for n in nodes], values, label, referencePhase)
        reference = nodes[int(np.argsort(values, kind="stable")[phases.reference])]  # phases are sorted by value
        init_mask = None
        if initSegmentId:
            init_mask = segment_mask(segmentationNode, initSegmentId, phases.grid)
            if not init_mask.array.any():
                raise InputError(f"segment '{initSegmentId}' is empty on the reference phase")
        box = roi_box_lps(roiNode) if roiNode is not None else None
        prompt = Prompt(task=task or None, box_lps=box) if (box is not None or task) else None
        if init_mask is None and prompt is None:
            raise InputError("give an initial prompt: a segment on the reference phase, an ROI box or a task text")
        sequence = None if isinstance(source, (list, tuple)) else source
        return ITVRequest(phases, prompt, init_mask, sequence, segmentationNode, reference)

    def compute(self, request: ITVRequest, engine=None, progress=None, cancel=None, propagation="rigid"):
        """Run the ITV pipeline through the backend (touches no MRML)."""
        return self.backend.run_itv(request.phases, request.prompt, request.initMask, engine, propagation,
                                    progress, cancel)

    def apply(self, request: ITVRequest, result) -> ITV4DCTOutputs:
        segmentation = request.segmentationNode
        if segmentation.GetSegmentation().GetNumberOfSegments() == 0:
            segmentation.SetReferenceImageGeometryParameterFromVolumeNode(request.referenceNode)
        segmentation.CreateDefaultDisplayNodes()
        itv_id = set_segment_mask(segmentation, result.itv, "ITV", ITV_COLOR)
        segment = segmentation.GetSegmentation().GetSegment(itv_id)
        segment.SetTag("RTSAM.itv_volume_ml", str(result.report["itv_volume_ml"]))
        labels = request.phases.labels()
        sequence, browser = add_phase_sequence(self.scene, result.phase_masks, labels, request.sequenceNode,
                                               segmentation.GetName())
        table = add_motion_table(self.scene, result.report["per_phase"], request.phases.values,
                                 f"{segmentation.GetName()} motion")
        chart = add_motion_plot(self.scene, table, f"{segmentation.GetName()} trajectory")
        return ITV4DCTOutputs(itv_id, sequence, browser, table, chart, result.report, segmentation,
                              request.referenceNode)

    def exportDicom(self, outputs: ITV4DCTOutputs, folder, format: str = "rtstruct", referenceDicom=None) -> dict:
        """The ITV and the phase masks of ``outputs`` as one DICOM RTSTRUCT or SEG in ``folder``
        (see ``ITV4DCTLib.dicom_export.export_dicom``)."""
        return export_dicom(outputs, folder, format, referenceDicom)
