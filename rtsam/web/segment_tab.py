"""The Segment tab: RTInjurySAMLogic (the Slicer module's own logic) driven from trame state.

Box from the RTDOSE or from a reference segment, include/exclude clicks placed in the slice
views (markups place mode), decode on every click or object-presence toggle, undo, export. The
model runs in a worker thread; MRML is only touched on the UI loop.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputError
from .backend import Progress, run_in_worker

EXPORT_FORMATS = {"nrrd": ".seg.nrrd", "seg": "DICOM SEG (.dcm)", "rtstruct": "DICOM RTSTRUCT (.dcm)"}


class SegmentTab:
    def __init__(self, app):
        from RTInjurySAMLib import RTInjurySAMLogic

        self.app, self.state = app, app.state
        self.logic = RTInjurySAMLogic(app.scene, app.backend)
        self.segmentation = self.roi = self.include = self.exclude = None
        self.state.update(seg_task="cerebral radiation necrosis", seg_patient="", seg_threshold=0.8, seg_margin=5.0,
                          seg_box_text="no box", seg_presence=False, click_mode="none", segment=None,
                          export_path="", export_format="nrrd")
        self.state.change("click_mode")(self.on_click_mode)
        self.state.change("seg_presence")(self.on_presence)

    # --- case -----------------------------------------------------------------------
    def reset(self) -> None:
        """New case: fresh output segmentation, box and click lists."""
        scene = self.app.scene
        for node in (self.segmentation, self.roi, self.include, self.exclude):
            if node is not None:
                scene.RemoveNode(node)
        self.logic.interaction = None
        self.segmentation = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "RTInjurySAM")
        self.roi = scene.AddNewNodeByClass("vtkMRMLMarkupsROINode", "Box")
        self.roi.CreateDefaultDisplayNodes()
        self.roi.GetDisplayNode().SetFillVisibility(False)
        self.roi.GetDisplayNode().SetSelectedColor(1.0, 0.85, 0.2)
        self.roi.SetDisplayVisibility(False)
        self.include = self._points("Include", (0.1, 0.9, 0.1))
        self.exclude = self._points("Exclude", (0.9, 0.1, 0.9))
        self.state.update(segment=None, seg_box_text="no box", click_mode="none")

    def _points(self, name: str, color) -> object:
        node = self.app.scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", name)
        node.CreateDefaultDisplayNodes()
        node.GetDisplayNode().SetSelectedColor(*color)
        node.GetDisplayNode().SetColor(*color)
        node.AddObserver(node.PointPositionDefinedEvent, lambda *_: self.app.schedule(self.update_from_points()))
        return node

    # --- box ------------------------------------------------------------------------
    def box_from_dose(self) -> None:
        case = self.app.require_case()
        if case.dose_node is None:
            raise InputError("this case has no RTDOSE: load a DICOM folder with one, or take the box from a segment")
        self.logic.boxFromDose(case.dose_node, float(self.state.seg_threshold), float(self.state.seg_margin),
                               roiNode=self.roi, referenceNode=case.image_node)
        self._show_box(self.roi.GetAttribute("RTSAM.DoseBox"))

    def box_from_reference(self, name: str) -> None:
        from RTSAMCommon.mrml_convert import segment_mask, set_roi_box, volume_from_node

        from ..itv.propagate import box_from_mask

        case = self.app.require_case()
        segment_id = case.references.GetSegmentation().GetSegmentIdBySegmentName(name)
        if not segment_id:
            raise InputError(f"no reference segment named '{name}'")
        mask = segment_mask(case.references, segment_id, volume_from_node(case.image_node))
        set_roi_box(self.roi, box_from_mask(mask, float(self.state.seg_margin)))
        self._show_box(f"around '{name}', margin {float(self.state.seg_margin):g} mm")

    def _show_box(self, text: str) -> None:
        from RTSAMCommon.mrml_convert import roi_box_lps

        from ..volume import lps_to_ras

        self.roi.SetDisplayVisibility(True)
        box = roi_box_lps(self.roi)
        self.app.jump_to(lps_to_ras(box.mean(axis=0)))
        size = np.ptp(box, axis=0)
        self.state.seg_box_text = f"{text} ({size[0]:.0f} x {size[1]:.0f} x {size[2]:.0f} mm)"

    # --- segmentation ---------------------------------------------------------------
    async def segment(self) -> None:
        """Open a session on the image with the task, box and clicks, and predict (embeds once)."""
        case = self.app.require_case()
        roi = self.roi if self.roi.GetDisplayVisibility() else None
        self.app.set_status("loading the engine")
        await self.app.engine_ready()
        self.logic.prepare(case.image_node, self.segmentation, self.state.seg_task, self.state.seg_patient, roi,
                           objectPresence=bool(self.state.seg_presence))
        self.logic.syncClicks(self.include, self.exclude)
        await self._predict_and_show("embedding and decoding")

    async def update_from_points(self) -> None:
        """A click was placed: decode with the cached embedding (first click opens the session)."""
        if self.logic.interaction is None:
            await self.segment()
            return
        changed = self.logic.syncBox()
        if self.logic.syncClicks(self.include, self.exclude) or changed:
            await self._predict_and_show("decoding")

    def on_presence(self, seg_presence, **_) -> None:
        """Object presence toggled: predict again when a session is open (else the next Segment takes it)."""
        if self.logic.interaction is not None:
            self.app.schedule(self._sync_presence(bool(seg_presence)))

    async def _sync_presence(self, presence: bool) -> None:
        # no-op when the session already has it (the toggle that undo writes back)
        if self.logic.interaction is not None and self.logic.syncPresence(presence):
            await self._predict_and_show("decoding")

    async def _predict_and_show(self, what: str) -> None:
        progress = Progress()
        result = await run_in_worker(lambda: self.logic.predict(progress, progress.cancel), progress,
                                     lambda p: self.app.report(what, p))
        self._publish(self.logic.apply(result))

    def undo(self) -> None:
        result = self.logic.undo(self.include, self.exclude)
        if result is None:
            raise InputError("nothing to undo")
        self.state.seg_presence = result.objectPresence  # the checkbox follows the prompt, like the points
        self._publish(result)

    def on_click_mode(self, click_mode, **_) -> None:
        markups = self.app.slicer_app.markups_logic
        if click_mode == "include":
            markups.place_node(self.include, persistent=True)
        elif click_mode == "exclude":
            markups.place_node(self.exclude, persistent=True)
        else:
            markups.disable_place_mode()

    def _publish(self, result) -> None:
        from RTSAMCommon.mrml_convert import points_lps, segment_mask

        from ..volume import lps_to_ras

        state = self.logic.interaction
        mask = segment_mask(self.segmentation, result.segmentId, state.image)
        self.state.segment = {
            "id": result.segmentId, "voxels": int(mask.array.sum()), "volume_ml": round(result.volumeMl, 3),
            "quality": None if result.quality is None else round(result.quality, 3), "low_quality": result.lowQuality,
            "engine": result.engine, "summary": result.summaryText(),
            "includes": self.include.GetNumberOfControlPoints(), "excludes": self.exclude.GetNumberOfControlPoints(),
            "include_ras": np.round(lps_to_ras(points_lps(self.include)), 1).tolist(),
            "dice_reference": self.app.dice_with_references(mask),
        }
        self.app.set_status(f"segment: {result.summaryText()}")

    def contains(self, ras) -> bool:
        """Whether the current segment holds the voxel at a RAS point."""
        from RTSAMCommon.mrml_convert import segment_mask

        from ..volume import ras_to_lps

        state = self.logic.interaction
        if state is None or state.segmentId is None:
            return False
        mask = segment_mask(self.segmentation, state.segmentId, state.image)
        i, j, k = np.round(mask.lps_to_ijk(ras_to_lps(np.asarray(ras, float)))).astype(int)
        inside = all(0 <= v < n for v, n in zip((i, j, k), mask.size_ijk))
        return bool(inside and mask.array[k, j, i])

    # --- export ---------------------------------------------------------------------
    def export(self) -> str:
        from RTSAMCommon.segments import export_segmentation_dicom, export_segmentation_nrrd

        case = self.app.require_case()
        path, fmt = Path(str(self.state.export_path).strip()).expanduser(), self.state.export_format
        if not str(path) or self.segmentation.GetSegmentation().GetNumberOfSegments() == 0:
            raise InputError("segment first, then give an output path")
        if fmt == "nrrd":
            return str(export_segmentation_nrrd(self.segmentation, path))
        if case.dicom_dir is None:
            raise InputError("DICOM SEG and RTSTRUCT need a case loaded from a DICOM folder (its series is referenced)")
        return str(export_segmentation_dicom(self.segmentation, case.image_node, case.dicom_dir, path, fmt))
