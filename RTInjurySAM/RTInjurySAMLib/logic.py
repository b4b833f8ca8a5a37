"""RTInjurySAM headless logic: MRML in, segment out, through an rtsam Session.

Work is split so a UI keeps MRML on the main thread and waits for the model elsewhere:
``readInputs``/``readClicks`` (read nodes, main thread), ``start`` (open the session, which
uploads the image, set the clicks and predict: no MRML, runs in a worker thread) and ``apply``
(writes the segment, main thread). ``prepare`` = ``open(readInputs(...))``; ``process`` does all.
"""

from __future__ import annotations

import logging
import time
import weakref
from dataclasses import dataclass, field

import numpy as np
import slicer

from rtsam.engines.registry import has_presence_rule
from rtsam.errors import InputError
from rtsam.volume import Volume

from RTSAMCommon.backends import make_backend
from RTSAMCommon.mrml_convert import points_lps, prepare_scene, roi_box_lps, set_roi_box, volume_from_node
from RTSAMCommon.segments import dose_nodes, is_low_quality, task_text, write_result_segment


@dataclass
class RTInjurySAMResult:
    segmentId: str
    quality: float | None
    lowQuality: bool
    volumeMl: float
    engine: str
    weights: str
    timingsMs: dict = field(default_factory=dict)
    boxLps: np.ndarray | None = None
    objectPresence: bool = False  # the prompt's presence was "on" (slices where the lesion ended left empty)

    def summaryText(self) -> str:
        quality = "n/a" if self.quality is None else f"{self.quality:.2f}"
        flag = " (LOW: review)" if self.lowQuality else ""
        times = ", ".join(f"{k} {v:.0f} ms" for k, v in self.timingsMs.items())
        return f"quality {quality}{flag}; {self.volumeMl:.2f} ml; {self.engine}; {times}"


@dataclass
class _Inputs:
    """What a session needs, read from MRML on the main thread."""

    image: Volume
    imageNodeId: str
    segmentationNode: object
    task: str | None
    patientText: str | None
    roiNode: object
    box: np.ndarray | None
    engine: str | None
    objectPresence: bool = False


@dataclass
class _Interaction:
    """The open session and where its result goes. ``roiBox`` is the ROI's box as last synced,
    so the session follows the ROI only when the user moves it."""

    session: object
    image: Volume
    imageNodeId: str
    segmentationNode: object
    task: str | None
    roiNode: object = None
    segmentId: str | None = None
    roiBox: np.ndarray | None = None
    presenceRule: bool = True  # the engine has an object-presence rule (else the checkbox is ignored)

    def presence(self, objectPresence: bool) -> str:
        """The prompt's presence choice for the module's checkbox: explicit, so a server's default never
        applies; "off" for an engine without the rule (a checkbox left ticked from another engine)."""
        return "on" if objectPresence and self.presenceRule else "off"


def _call_if_alive(reference, method: str):
    """An observer that calls ``method`` on the referenced object while it lives: the scene holds no
    strong reference to the logic (the scene's destructor closes it, possibly during garbage collection)."""
    def call(*args):
        target = reference()
        if target is not None:
            getattr(target, method)()

    return call


def _click_key(lps, positive: bool) -> tuple:
    return tuple(np.round(np.asarray(lps, float), 3)), bool(positive)


class RTInjurySAMLogic:
    """RTInjurySAM logic on ``scene`` (default ``slicer.mrmlScene``) with an injected backend."""

    def __init__(self, scene=None, backend=None):
        self.scene = scene if scene is not None else slicer.mrmlScene
        self.backend = backend or make_backend("local")
        prepare_scene(self.scene)
        self.interaction: _Interaction | None = None
        self.writingPrompt = False  # True while undo writes the prompt back into the nodes
        self.scene.AddObserver(slicer.vtkMRMLScene.StartCloseEvent, _call_if_alive(weakref.ref(self), "reset"))

    def reset(self) -> None:
        """Forget the interaction (scene closed, or a new one starts); frees the server's session."""
        state, self.interaction = self.interaction, None
        close = getattr(state.session, "close", None) if state is not None else None
        if close is not None:
            try:
                close()
            except Exception as error:  # the server may be gone already; nothing left to free
                logging.info("RTInjurySAM: could not close the previous session: %s", error)

    # --- inputs ---------------------------------------------------------------------
    def findDoseNode(self):
        """The first volume SlicerRT's DICOM-RT import marked as RTDOSE, or None."""
        found = dose_nodes(self.scene)
        return found[0] if found else None

    def boxFromDose(self, doseNode, threshold: float = 0.8, margin: float = 0.0, roiNode=None,
                    referenceNode=None):
        """An ROI markups node on the box around dose >= threshold x Dmax, grown by ``margin`` mm."""
        from rtsam.prompts.dose_box import dose_box

        dose = volume_from_node(doseNode)
        reference = volume_from_node(referenceNode) if referenceNode is not None else None
        box = dose_box(dose, threshold=threshold, margin_mm=margin, reference=reference)
        if roiNode is None:
            roiNode = self.scene.AddNewNodeByClass("vtkMRMLMarkupsROINode", "Dose box")
            roiNode.CreateDefaultDisplayNodes()
        set_roi_box(roiNode, box.box_lps)
        roiNode.SetAttribute("RTSAM.DoseBox", f"{threshold:g} x Dmax {box.dmax_gy:.2f} Gy, margin {margin:g} mm")
        return roiNode

    # --- one-shot -------------------------------------------------------------------
    def process(self, imageNode, segmentationNode, doseNode=None, task=None, patientText=None, roiNode=None,
                includePoints=None, excludePoints=None, engine=None, threshold=0.8, margin=0.0,
                progress=None, cancel=None, objectPresence=False) -> RTInjurySAMResult:
        """Segment one injury: box from ``roiNode`` (or from ``doseNode``), task text, then clicks;
        ``objectPresence``: leave the box's slices where the lesion ended empty (litemedsam)."""
        if roiNode is None and doseNode is not None:
            roiNode = self.boxFromDose(doseNode, threshold, margin, referenceNode=imageNode)
        self.prepare(imageNode, segmentationNode, task, patientText, roiNode, engine, objectPresence)
        self.syncClicks(includePoints, excludePoints)
        return self.apply(self.predict(progress, cancel))

    # --- interactive steps ----------------------------------------------------------
    def prepare(self, imageNode, segmentationNode, task=None, patientText=None, roiNode=None, engine=None,
                objectPresence=False):
        """Open a session on the image (embeddings are computed by the first predict)."""
        return self.open(self.readInputs(imageNode, segmentationNode, task, patientText, roiNode, engine,
                                         objectPresence))

    def readInputs(self, imageNode, segmentationNode, task=None, patientText=None, roiNode=None,
                   engine=None, objectPresence=False) -> _Inputs:
        """Read the nodes and set up the output segmentation (main thread)."""
        if imageNode is None or segmentationNode is None:
            raise InputError("select an image volume and an output segmentation")
        image = volume_from_node(imageNode)
        box = roi_box_lps(roiNode) if roiNode is not None else None
        if segmentationNode.GetSegmentation().GetNumberOfSegments() == 0:
            segmentationNode.SetReferenceImageGeometryParameterFromVolumeNode(imageNode)
        segmentationNode.CreateDefaultDisplayNodes()
        return _Inputs(image, imageNode.GetID(), segmentationNode, task, patientText, roiNode, box, engine,
                       bool(objectPresence))

    def open(self, inputs: _Inputs, progress=None, cancel=None) -> _Interaction:
        """Open the session (uploads the image to the server; no MRML: any thread)."""
        self.reset()
        session = self.backend.open_session(inputs.image, inputs.engine, progress, cancel)
        session.set_task(task_text(inputs.task), inputs.patientText or None)
        interaction = _Interaction(session, inputs.image, inputs.imageNodeId, inputs.segmentationNode, inputs.task,
                                   inputs.roiNode, roiBox=inputs.box, presenceRule=has_presence_rule(inputs.engine))
        session.set_presence(interaction.presence(inputs.objectPresence))
        if inputs.box is not None:
            session.set_box(inputs.box)
        self.interaction = interaction
        return interaction

    def start(self, inputs: _Inputs, clicks: list, progress=None, cancel=None):
        """Open the session, set the clicks and predict: the worker-thread part of Apply."""
        self.open(inputs, progress, cancel)
        self.setClicks(clicks)
        return self.predict(progress, cancel)

    def _require(self) -> _Interaction:
        if self.interaction is None:
            raise InputError("start a segmentation first (Apply)")
        return self.interaction

    @staticmethod
    def readClicks(includePoints=None, excludePoints=None) -> list:
        """The clicks the two point lists hold (main thread)."""
        return ([_click_key(p, True) for p in points_lps(includePoints)]
                + [_click_key(p, False) for p in points_lps(excludePoints)])

    def syncClicks(self, includePoints=None, excludePoints=None) -> bool:
        """Make the session's clicks match the two point lists (one edit per change); True if changed."""
        return self.setClicks(self.readClicks(includePoints, excludePoints))

    def setClicks(self, wanted: list) -> bool:
        session = self._require().session
        current = [_click_key(c.lps, c.positive) for c in session.prompt.clicks]
        removed = [index for index, key in enumerate(current) if key not in wanted]
        added = [key for key in wanted if key not in current]
        for index in reversed(removed):
            session.remove_click(index)
        for lps, positive in added:
            session.add_click(lps, positive)
        return bool(removed or added)

    def syncBox(self) -> bool:
        """Follow a moved ROI; True when the session's box changed."""
        state = self._require()
        if state.roiNode is None:
            return False
        box = roi_box_lps(state.roiNode)
        if state.roiBox is not None and np.allclose(state.roiBox, box, atol=1e-3):
            return False
        state.session.set_box(box)
        state.roiBox = box
        return True

    def syncPresence(self, objectPresence: bool) -> bool:
        """Follow the object-presence checkbox; True when the session's choice changed (one undo step)."""
        state = self._require()
        if state.session.prompt.presence == state.presence(objectPresence):
            return False
        state.session.set_presence(state.presence(objectPresence))
        return True

    def syncPrompt(self, includePoints=None, excludePoints=None, objectPresence=None) -> bool:
        """After the user placed, moved or removed a point, moved the ROI or toggled object presence
        (``objectPresence``, None: leave it): edit the session's prompt (no model call). False when nothing
        changed, or while undo writes the prompt back."""
        if self.writingPrompt or self.interaction is None:
            return False
        changed = self.syncBox()
        if objectPresence is not None:
            changed = self.syncPresence(objectPresence) or changed
        return self.syncClicks(includePoints, excludePoints) or changed

    def predict(self, progress=None, cancel=None):
        """Run the model on the session's prompt; touches no MRML (safe in a worker thread)."""
        start = time.perf_counter()
        result = self._require().session.predict(progress=progress, cancel=cancel)
        result.timings_ms.setdefault("total", (time.perf_counter() - start) * 1000.0)
        return result

    def apply(self, result) -> RTInjurySAMResult:
        """Write a SegmentationResult into the output segment (main thread)."""
        state = self._require()
        summary = result.summary()
        state.segmentId = write_result_segment(state.segmentationNode, result.mask, state.task, summary,
                                               segment_id=state.segmentId)
        prompt = state.session.prompt
        return RTInjurySAMResult(
            segmentId=state.segmentId, quality=result.quality, lowQuality=is_low_quality(result.quality),
            volumeMl=summary["volume_ml"], engine=result.engine, weights=result.weights,
            timingsMs=dict(result.timings_ms), boxLps=prompt.box_lps, objectPresence=prompt.presence == "on")

    def updateFromPoints(self, includePoints=None, excludePoints=None, objectPresence=None) -> RTInjurySAMResult | None:
        """After a click is placed or moved (or object presence toggled): decode with the cached embedding
        and update the segment."""
        if not self.syncPrompt(includePoints, excludePoints, objectPresence):
            return None
        return self.apply(self.predict())

    def undo(self, includePoints=None, excludePoints=None) -> RTInjurySAMResult | None:
        """Undo the last prompt edit; points and ROI are put back to match. None: nothing to undo."""
        state = self._require()
        if not state.session.undo():
            return None
        prompt = state.session.prompt
        self._showPrompt(prompt, includePoints, excludePoints)
        result = state.session.result
        return self.apply(result if result is not None else self.predict())

    def _showPrompt(self, prompt, includePoints, excludePoints) -> None:
        from rtsam.volume import lps_to_ras

        state = self.interaction
        self.writingPrompt = True  # the point events queued by NodeModify fire on its exit: ignore them
        try:
            for node, positive in ((includePoints, True), (excludePoints, False)):
                if node is None:
                    continue
                with slicer.util.NodeModify(node):
                    node.RemoveAllControlPoints()
                    for click in prompt.clicks:
                        if click.positive == positive:
                            node.AddControlPoint(*lps_to_ras(click.lps))
            if state.roiNode is not None and prompt.box_lps is not None:
                set_roi_box(state.roiNode, prompt.box_lps)
        finally:
            self.writingPrompt = False
        state.roiBox = roi_box_lps(state.roiNode) if state.roiNode is not None else None
