"""The web viewer: a trame server with trame-slicer slice views over one MRML scene, and the
RTInjurySAM (Segment tab) and ITV4DCT (ITV tab) module logics acting on that scene."""

from __future__ import annotations

import asyncio
import logging
import traceback

from ..errors import InputError, RTSAMError
from .modules import add_module_paths

log = logging.getLogger(__name__)

# (window, level) per preset; "auto" takes the volume's own automatic window/level
WINDOW_LEVEL = {"auto": None, "soft tissue": (400, 40), "lung": (1500, -600), "bone": (2000, 400), "brain": (80, 40)}


class WebApp:
    """Holds the SlicerApp (scene, logics, views) and the two tabs; keep a reference to it while serving."""

    def __init__(self, backend, server=None, api_keys: list[str] | None = None):
        from trame.app import get_server
        from trame_slicer import module as trame_slicer_module
        from trame_slicer.core import SlicerApp

        add_module_paths()
        from .itv_tab import ITVTab
        from .segment_tab import SegmentTab

        self.server = server or get_server("rtsam-web", client_type="vue3")
        self.server.enable_module(trame_slicer_module)
        self.state = self.server.state
        self.slicer_app = SlicerApp()
        self.sequences_logic = self._sequences_logic()
        self.backend = backend
        self.case = None
        self.lock = asyncio.Lock()
        self.state.update(tab="segment", status="load a case", error="", busy=False, progress=0, case_info=None,
                          reference_names=[], seg_reference=None, window_level="auto", case_path="", mask_paths="")
        self.state.change("window_level")(self.on_window_level)
        self.layout_manager = self._views()
        self.segment_tab = SegmentTab(self)
        self.itv_tab = ITVTab(self)
        if api_keys:
            require_key(self.server, api_keys)
        from .ui import build_ui

        self.ui = build_ui(self)

    @property
    def scene(self):
        return self.slicer_app.scene

    def _sequences_logic(self):
        import slicer

        logic = slicer.vtkSlicerSequencesLogic()
        self.slicer_app.register_module_logic(logic)
        return logic

    def _views(self):
        from trame_slicer.core import LayoutManager
        from trame_slicer.rca_view import register_rca_factories
        from trame_slicer.views import Layout, LayoutDirection, ViewLayoutDefinition as Views

        register_rca_factories(self.slicer_app.view_manager, self.server)
        manager = LayoutManager(self.scene, self.slicer_app.view_manager, self.server)
        manager.register_layout("rtsam", Layout(LayoutDirection.Horizontal, [
            Views.axial_view(), Layout(LayoutDirection.Vertical, [Views.sagittal_view(), Views.coronal_view()])]))
        manager.set_layout("rtsam")
        for view in self.slicer_app.view_manager.get_slice_views():  # refit when the browser sizes the view
            view.render_window().AddObserver("WindowResizeEvent", lambda *_, v=view: v.fit_view_to_content())
        return manager

    # --- errors, progress, tasks ----------------------------------------------------
    async def guarded(self, work) -> None:
        """Await ``work`` with the busy flag up, one action at a time (a click during a prediction waits for
        it: the session is not shared between threads); errors go to the error banner, never lost."""
        async with self.lock:
            await self._run_shown(work)

    async def _run_shown(self, work) -> None:
        with self.state:
            self.state.update(busy=True, error="", progress=0)
        try:
            await work
        except RTSAMError as error:
            self.state.error = str(error)
        except Exception as error:  # a bug: keep the app alive and show it
            log.error("%s", traceback.format_exc())
            self.state.error = f"internal error: {error!r}"
        finally:
            with self.state:
                self.state.busy = False

    def run_guarded(self, function, *args):
        """A trame callback: sync or async ``function`` with errors shown in the app."""
        import inspect

        async def work():
            result = function(*args)
            if inspect.isawaitable(result):
                await result

        self.schedule(work())

    def schedule(self, coroutine) -> None:
        from trame_server.utils.asynchronous import create_task

        create_task(self.guarded(coroutine))

    async def engine_ready(self) -> None:
        """The engine, loaded in a worker thread when it is not yet (``rtsam web`` loads it before serving:
        its imports would hold Python's import lock and stall the UI loop)."""
        from .backend import run_in_worker

        await run_in_worker(lambda: self.backend.engine(None), None)

    def report(self, what: str, progress) -> None:
        with self.state:
            self.state.progress = round(100 * progress.fraction)
            self.state.status = f"{what}: {progress.message}" if progress.message else f"{what}..."

    def set_status(self, text: str) -> None:
        self.state.status = text

    # --- case -----------------------------------------------------------------------
    def load_case(self) -> None:
        from .itv_tab import split_paths
        from .loading import load_case

        path = str(self.state.case_path).strip()
        if not path:
            raise InputError("give an image file (NRRD, NIfTI) or a DICOM folder")
        self.itv_tab.clear()
        if self.case is not None:
            for node in (self.case.image_node, self.case.dose_node, self.case.references):
                if node is not None:
                    self.scene.RemoveNode(node)
        self.case = load_case(self.scene, path, split_paths(self.state.mask_paths))
        self.segment_tab.reset()
        self.show_volume(self.case.image_node)
        self.state.update(reference_names=list(self.case.names),
                          seg_reference=self.case.names[0] if self.case.names else None,
                          case_info={"name": self.case.image_node.GetName(), "dose": self.case.dose_node is not None,
                                "dicom": self.case.dicom_dir is not None,
                                "size": list(self.case.image_node.GetImageData().GetDimensions())})
        self.set_status(f"loaded {self.case.image_node.GetName()}")

    def require_case(self):
        if self.case is None:
            raise InputError("load a case first")
        return self.case

    def show_volume(self, node) -> None:
        """``node`` as background of the three slice views, fitted, at the current window/level preset."""
        manager = self.slicer_app.display_manager
        manager.show_volume_in_slice_background(node)
        manager.show_volume_in_slice_foreground(None)
        self.on_window_level(self.state.window_level)
        for view in self.slicer_app.view_manager.get_slice_views():
            view.fit_view_to_content()
        self.render_views()

    def render_views(self) -> None:
        for view in self.slicer_app.view_manager.get_slice_views():
            view.schedule_render()

    def on_window_level(self, window_level, **_) -> None:
        from trame_slicer.core import VolumeWindowLevel

        views = self.slicer_app.view_manager.get_slice_views()
        node_id = views[0].get_background_volume_id() if views else None
        node = self.scene.GetNodeByID(node_id) if node_id else None
        if node is None or node.GetDisplayNode() is None:
            return
        preset = WINDOW_LEVEL.get(window_level)
        if preset is None:
            VolumeWindowLevel.set_volume_node_display_min_max_range(
                node, *VolumeWindowLevel.get_volume_auto_min_max_range(node))
        else:
            VolumeWindowLevel.set_volume_node_window_level(node, *preset)

    def dice_with_references(self, mask) -> float | None:
        """Dice of ``mask`` with the chosen reference segment (a loaded label or structure), if any."""
        from RTSAMCommon.mrml_convert import segment_mask

        from ..metrics import dice

        name = self.state.seg_reference
        if self.case is None or not name:
            return None
        segment_id = self.case.references.GetSegmentation().GetSegmentIdBySegmentName(name)
        if not segment_id:
            return None
        return round(float(dice(mask, segment_mask(self.case.references, segment_id, mask))), 4)

    def jump_to(self, ras) -> None:
        """Move every slice view to the slices through a RAS point (no panning)."""
        for view in self.slicer_app.view_manager.get_slice_views():
            view.get_view_node().JumpSliceByOffsetting(*[float(v) for v in ras])

    def slice_geometry(self, name: str) -> dict:
        """A slice view's XY (pixel, origin bottom-left) to RAS matrix and its size in pixels."""
        views = {view.get_orientation().lower(): view for view in self.slicer_app.view_manager.get_slice_views()}
        view = views[name]
        matrix = view.get_view_node().GetXYToRAS()
        width, height = view.render_window().GetSize()
        return {"xy_to_ras": [matrix.GetElement(r, c) for r in range(4) for c in range(4)], "size": [width, height]}


def require_key(server, keys: list[str]) -> None:
    """Only websocket clients presenting one of ``keys`` (the ``secret`` URL parameter) get a session."""
    from ..server.auth import AuthError, KeyChecker

    checker = KeyChecker(keys)

    async def validate(token, client_id):
        try:
            checker.owner(token, None)
        except AuthError:
            return False
        return True

    server.add_protocol_to_configure(lambda protocol: setattr(protocol, "validateToken", validate))
