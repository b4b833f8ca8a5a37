"""The ITV tab: ITV4DCTLogic (the Slicer module's own logic) on a 4DCT loaded into the scene.

Phases come from phase files, a ``.seq.nrrd`` or a DICOM folder (rtsam.itv.phases); the reference
phase is prompted by a GTV mask file or by the Segment tab's box. Per-phase masks are browsed with
the 4DCT through Slicer's sequence browser; the motion plot is drawn from the logic's motion table.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import InputError
from .backend import Progress, run_in_worker
from .plot import motion_svg

GTV_COLOR = (0.3, 0.5, 1.0)


def split_paths(text: str) -> list[Path]:
    """Paths typed one per line or separated by commas or semicolons."""
    return [Path(p.strip()).expanduser() for p in re.split(r"[\n,;]+", text or "") if p.strip()]


class ITVTab:
    def __init__(self, app):
        from ITV4DCTLib import ITV4DCTLogic

        self.app, self.state = app, app.state
        self.logic = ITV4DCTLogic(app.scene, app.backend)
        self.sequence = self.browser = self.segmentation = self.outputs = None
        self.state.update(itv_phases_path="", itv_gtv_path="", itv_prompt="gtv", itv_reference=0,
                          itv_propagation="rigid", itv_phase=0, itv_phase_count=0, itv_result=None)
        self.state.change("itv_phase")(self.on_phase)

    def load(self) -> None:
        """Read the 4DCT, put it in the scene as a browsable volume sequence and show its first phase."""
        from ITV4DCTLib.scenarios import make_phase_sequence

        from ..itv.phases import load_phases

        paths = split_paths(self.state.itv_phases_path)
        if not paths:
            raise InputError("give the 4DCT: phase files, a .seq.nrrd file or a DICOM folder")
        if len(paths) > 1:
            phases = load_phases(files=paths)
        elif paths[0].is_dir():
            phases = load_phases(dicom=paths[0])
        elif paths[0].name.lower().endswith(".seq.nrrd"):
            phases = load_phases(seq=paths[0])
        else:
            raise InputError("one file is one phase: give several phase files or a .seq.nrrd", paths[0])
        self.clear()
        self.sequence, self.browser = make_phase_sequence(self.app.scene, phases.volumes, "4DCT")
        self.app.sequences_logic.UpdateProxyNodesFromSequences(self.browser)
        self.segmentation = self.app.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "ITV4DCT")
        self.state.update(itv_phase_count=len(phases), itv_phase=0, itv_result=None,
                          itv_reference=min(int(self.state.itv_reference), len(phases) - 1))
        self.app.show_volume(self.browser.GetProxyNode(self.sequence))
        self.app.set_status(f"4DCT: {len(phases)} phases from {phases.source}")

    def clear(self) -> None:
        scene = self.app.scene
        for node in (self.sequence, self.browser, self.segmentation):
            if node is not None:
                scene.RemoveNode(node)
        self.sequence = self.browser = self.segmentation = self.outputs = None

    def _initial_segment(self) -> str | None:
        """The GTV file as a segment on the reference phase (None for a box prompt)."""
        from RTSAMCommon.mrml_convert import set_segment_mask, volume_from_node

        from ..io import read_image
        from ..itv.phases import check_mask_grid

        if self.state.itv_prompt != "gtv":
            return None
        path = Path(str(self.state.itv_gtv_path).strip()).expanduser()
        if not str(self.state.itv_gtv_path).strip():
            raise InputError("give the GTV mask file of the reference phase, or choose the box prompt")
        mask = read_image(path)
        reference = self.sequence.GetNthDataNode(int(self.state.itv_reference))
        check_mask_grid(mask, volume_from_node(reference), "GTV")
        return set_segment_mask(self.segmentation, mask.with_array((mask.array > 0).astype("uint8")), "GTV",
                                GTV_COLOR)

    async def run(self) -> None:
        """Prompt the reference phase, segment every phase in a worker thread, then show the outputs."""
        if self.sequence is None:
            raise InputError("load a 4DCT first")
        roi = None
        if self.state.itv_prompt == "box":
            roi = self.app.segment_tab.roi if self.app.segment_tab.roi.GetDisplayVisibility() else None
            if roi is None:
                raise InputError("set a box first (Segment tab: box from dose or from a segment)")
        request = self.logic.prepare(self.sequence, self.segmentation, int(self.state.itv_reference),
                                     self._initial_segment(), roi)
        progress = Progress()
        result = await run_in_worker(
            lambda: self.logic.compute(request, None, progress, progress.cancel, self.state.itv_propagation),
            progress, lambda p: self.app.report("ITV", p))
        self.outputs = self.logic.apply(request, result)
        self._publish()
        self.app.set_status(f"ITV {result.report['itv_volume_ml']:.2f} ml over {len(result.phase_masks)} phases")

    def _publish(self) -> None:
        outputs, report = self.outputs, self.outputs.report
        rows = [{"label": row["label"], "volume_ml": row["volume_ml"]} for row in report["per_phase"]]
        self.state.itv_result = {"itv_volume_ml": report["itv_volume_ml"], "phases": rows,
                                 "masks_voxels": [int(m) for m in self._phase_voxels()],
                                 "plot": motion_svg(outputs.table)}
        self.on_phase(self.state.itv_phase)

    def _phase_voxels(self) -> list[int]:
        from RTSAMCommon.mrml_convert import segment_mask, volume_from_node

        grid = volume_from_node(self.sequence.GetNthDataNode(int(self.state.itv_reference)))
        sequence = self.outputs.phaseSequence
        voxels = []
        for n in range(sequence.GetNumberOfDataNodes()):
            node = sequence.GetNthDataNode(n)
            voxels.append(segment_mask(node, node.GetSegmentation().GetNthSegmentID(0), grid).array.sum())
        return voxels

    def on_phase(self, itv_phase, **_) -> None:
        """Browse the 4DCT (and the per-phase masks, synchronised) to one phase."""
        if self.browser is None:
            return
        browser = self.outputs.browser if self.outputs is not None else self.browser
        browser.SetSelectedItemNumber(int(itv_phase))
        self.app.sequences_logic.UpdateProxyNodesFromSequences(browser)
        if self.outputs is not None:
            proxy = browser.GetProxyNode(self.outputs.phaseSequence)
            if proxy is not None:
                proxy.CreateDefaultDisplayNodes()
