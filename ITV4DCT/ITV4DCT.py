"""ITV4DCT: internal target volume from a 4DCT with per-phase segmentation.

Thin Slicer entry point: the logic lives in ITV4DCTLib (headless, tested with pytest);
shared helpers come from RTSAMCommon (installed beside this module by RTInjurySAM).
"""

from pathlib import Path
from typing import Annotated

import qt
import slicer
import vtk
from slicer import vtkMRMLMarkupsROINode, vtkMRMLSegmentationNode, vtkMRMLSequenceNode
from slicer.parameterNodeWrapper import Choice, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (ScriptedLoadableModule, ScriptedLoadableModuleLogic,
                                           ScriptedLoadableModuleTest, ScriptedLoadableModuleWidget)
from slicer.util import VTKObservationMixin

import ITV4DCTLib
from RTSAMCommon.slicer_app import BackendPanelMixin, ensureDependencies, stopLocalServersOnQuit

ENGINES = ["litemedsam", "sam3d", "sam3d-tiny", "sam3"]  # rtsam's registry (a test checks they agree)


class ITV4DCT(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "ITV4DCT"
        self.parent.categories = ["Radiotherapy", "Segmentation"]
        self.parent.dependencies = ["Sequences", "Segmentations", "Plots"]
        self.parent.contributors = ["SlicerRTSAM developers"]
        self.parent.helpText = """
Builds an internal target volume (ITV) from a 4DCT.
<ol><li>Load the 4DCT (DICOM import gives a volume sequence) and select it.</li>
<li>Choose the reference phase and the initial prompt: a segment drawn on the reference phase,
an ROI box, or a task text.</li>
<li>Click <b>Apply</b>: every phase is segmented, filtered for phase coherence, and the union
is stored as the <b>ITV</b> segment on the reference geometry.</li>
<li>Browse the per-phase masks with the sequence browser; the table and plot give the
per-phase volume and tumour centroid motion (RAS mm).</li>
<li><b>Export DICOM...</b> writes the ITV and each phase's mask (ITV, GTV_phase00, ...) as one
RTSTRUCT or SEG on the reference phase's DICOM series (or, when the phase was not loaded from
DICOM, on a CT series of it written beside).</li></ol>"""
        self.parent.acknowledgementText = """
Methods from "ITV4DCT: internal target volume delineation on 4DCT with phase-coherent
filtering" and "RTInjurySAM: progressive prompting of a 3D SAM for radiotherapy-induced
normal tissue injury segmentation"."""


@parameterNodeWrapper
class ITV4DCTParameterNode:
    inputSequence: vtkMRMLSequenceNode
    referencePhase: int = 0
    promptKind: Annotated[str, Choice(["existing segment", "ROI box", "text only"])] = "existing segment"
    initSegmentation: vtkMRMLSegmentationNode
    initSegmentName: str = ""
    roi: vtkMRMLMarkupsROINode
    task: str = ""
    propagation: Annotated[str, Choice(["rigid", "deformable", "engine"])] = "rigid"
    backend: Annotated[str, Choice(["local", "remote"])] = "local"
    engine: Annotated[str, Choice(ENGINES)] = "litemedsam"
    weights: Path  # the chosen engine's weights when it ships none (sam3d, sam3); empty: its own
    serverUrl: str = "http://localhost:8765"
    outputSegmentation: vtkMRMLSegmentationNode
    dicomFormat: Annotated[str, Choice(["RTSTRUCT", "SEG"])] = "RTSTRUCT"


class ITV4DCTLogic(ScriptedLoadableModuleLogic, ITV4DCTLib.ITV4DCTLogic):
    def __init__(self, scene=None, backend=None):
        ScriptedLoadableModuleLogic.__init__(self)
        ITV4DCTLib.ITV4DCTLogic.__init__(self, scene, backend)

    def getParameterNode(self):
        return ITV4DCTParameterNode(super().getParameterNode())


class ITV4DCTWidget(ScriptedLoadableModuleWidget, VTKObservationMixin, BackendPanelMixin):
    requester = "ITV4DCT"

    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._job = None
        self._outputs = None

    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/ITV4DCT.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = ITV4DCTLogic()
        stopLocalServersOnQuit()
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, lambda *a: self.setParameterNode(None))
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.ui.applyButton.connect("clicked(bool)", self.onApply)
        self.ui.cancelButton.connect("clicked(bool)", self.onCancel)
        self.ui.testConnectionButton.connect("clicked(bool)", self.onTestConnection)
        self.ui.showPlotButton.connect("clicked(bool)", self.onShowPlot)
        self.ui.exportDicomButton.connect("clicked(bool)", self.onExportDicom)
        self.ui.showLogButton.connect("clicked(bool)", self.onShowLog)
        self.ui.apiKeyLineEdit.connect("textChanged(QString)", self.setApiKey)
        self.ui.cancelButton.enabled = False
        self.initializeParameterNode()

    def cleanup(self):
        """Module reload or Slicer exit: stop the local servers (the next Apply starts a fresh one)."""
        from rtsam.client.local_process import stop_all

        self.removeObservers()
        stop_all()

    def enter(self):
        self.initializeParameterNode()

    def exit(self):
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event):
        self._outputs = None  # its nodes are gone
        self.ui.itvLabel.text = self.ui.motionLabel.text = ""
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self):
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.inputSequence:
            self._parameterNode.inputSequence = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLSequenceNode")

    def setParameterNode(self, parameterNode):
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateGui)
        self._parameterNode = parameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateGui)
            self._updateGui()

    def _updateGui(self, caller=None, event=None):
        node = self._parameterNode
        kind = node.promptKind if node else ""
        self.ui.initSegmentationSelector.enabled = self.ui.initSegmentLineEdit.enabled = kind == "existing segment"
        self.ui.roiSelector.enabled = kind == "ROI box"
        self.ui.applyButton.enabled = bool(node and node.inputSequence and node.outputSegmentation) and self._job is None
        self.ui.showPlotButton.enabled = self.ui.exportDicomButton.enabled = self._outputs is not None

    def _initSegmentId(self):
        """The chosen initial segment, copied into the output segmentation (the ITV goes beside it):
        the copy's own ID, which Slicer makes unique when the output already has that ID."""
        node = self._parameterNode
        if node.promptKind != "existing segment" or not node.initSegmentation:
            return None
        segmentId = ITV4DCTLib.initial_segment_id(node.initSegmentation, node.initSegmentName)
        if node.initSegmentation is node.outputSegmentation:
            return segmentId
        return ITV4DCTLib.copy_initial_segment(node.initSegmentation, segmentId, node.outputSegmentation)

    def onApply(self):
        if self._job is not None or not ensureDependencies("ITV4DCT"):
            return
        node = self._parameterNode
        with slicer.util.tryWithErrorDisplay("Could not start the ITV computation.", waitCursor=True):
            self.logic.backend = self.backend()
            request = self.logic.prepare(node.inputSequence, node.outputSegmentation, node.referencePhase,
                                         self._initSegmentId(), node.roi if node.promptKind == "ROI box" else None,
                                         node.task)
            engine, propagation = node.engine, node.propagation
            self.runInBackground(
                lambda progress, cancel: self.logic.compute(request, engine, progress, cancel, propagation),
                lambda result: self._onItv(request, result))

    def _onItv(self, request, result):
        self._outputs = self.logic.apply(request, result)
        report = self._outputs.report
        motion = report["motion_mm"]
        self.ui.itvLabel.text = f"{report['itv_volume_ml']:.2f} ml over {report['phases']} phases"
        self.ui.motionLabel.text = (f"peak-to-peak L-R {motion['x_mm']} mm, A-P {motion['y_mm']} mm, "
                                    f"S-I {motion['z_mm']} mm; " + "; ".join(report["warnings"]))

    def onShowPlot(self):
        slicer.modules.plots.logic().ShowChartInLayout(self._outputs.chart)

    def onExportDicom(self):
        """The ITV and phase masks as one DICOM RTSTRUCT or SEG in a chosen folder."""
        from ITV4DCTLib.dicom_export import FORMATS

        folder = qt.QFileDialog.getExistingDirectory(slicer.util.mainWindow(), "Folder for the ITV DICOM export")
        if not folder:
            return
        with slicer.util.tryWithErrorDisplay("DICOM export failed.", waitCursor=True):
            written = self.logic.exportDicom(self._outputs, folder, FORMATS[self._parameterNode.dicomFormat])
            notes = [f"Wrote {written['path']}."]
            if written["written_reference_series"]:
                notes.append("The reference phase's DICOM series is not in the DICOM database: it was written as a "
                             f"CT series in {written['written_reference_series']}, which the export references.")
            notes += [f"{name} is empty and left out." for name in written["empty_phases"]]
            slicer.util.infoDisplay("\n".join(notes), windowTitle="ITV4DCT DICOM export")


class ITV4DCTTest(ScriptedLoadableModuleTest):
    """Runs the same scenario as tests/test_slicer_itv4dct.py (the ITV as a job on the local rtsam server);
    skipped with a message when the Python packages are missing."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        from RTSAMCommon.dependencies import missing_requirements, missing_torch
        from rtsam.client.local_process import stop_all

        missing = missing_torch() + missing_requirements()
        if missing:
            self.delayDisplay(f"SKIPPED: missing Python packages {', '.join(missing)} "
                              "(install them with the module's Apply; testing mode installs nothing)")
            return
        try:
            self.setUp()
            self.test_generated_4dct()
        finally:
            stop_all()

    def test_generated_4dct(self):
        import numpy as np

        from ITV4DCTLib.scenarios import run_itv_scenario
        from RTInjurySAMLib.sampledata import downloadSample

        out = run_itv_scenario(slicer.mrmlScene, downloadSample("brain1_image.nrrd"),
                               downloadSample("brain1_label.nrrd"), phases=2)
        self.assertGreater(out["dice_itv"], 0.7)
        self.assertTrue(np.array_equal(out["itv"].array > 0, np.any([m.array for m in out["phase_masks"]], axis=0)))
        self.assertEqual(out["outputs"].phaseSequence.GetNumberOfDataNodes(), 2)
        self.delayDisplay("ITV Dice %.3f" % out["dice_itv"])
        self.export_dicom(out["outputs"])

    def export_dicom(self, outputs):
        import tempfile

        from rtsam.io import read_rtstruct

        with tempfile.TemporaryDirectory(dir=slicer.app.temporaryPath) as folder:
            written = ITV4DCTLogic().exportDicom(outputs, folder)
            self.assertEqual(read_rtstruct(written["path"]).names, ["ITV", "GTV_phase00", "GTV_phase01"])
        self.delayDisplay("ITV exported as DICOM RTSTRUCT")
