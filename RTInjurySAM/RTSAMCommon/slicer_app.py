"""Helpers that need the Slicer application (Qt): dependencies and background jobs.

Imported only by the module widgets, never by headless logic or tests.
"""

from __future__ import annotations

import threading
from pathlib import Path

import qt
import slicer

TORCH_SKIP = ["torch", "torchvision", "SimpleITK"]  # provided by Slicer / the PyTorch extension


def ensureDependencies(requirementsFile: Path, requester: str) -> bool:
    """Install missing Python packages on first use (main thread); False when the user declines.
    ``slicer.packaging.pip_ensure`` checks without pip, asks before installing and offers a restart."""
    try:
        _ensureTorch(requester)
        requirements = slicer.packaging.load_requirements(str(requirementsFile))
        slicer.packaging.pip_ensure(requirements, skip_packages=TORCH_SKIP, requester=requester)
    except RuntimeError as error:  # declined
        slicer.util.warningDisplay(f"{requester} cannot run without its Python packages: {error}.")
        return False
    return True


def _ensureTorch(requester: str) -> None:
    """PyTorch through the PyTorch extension (it picks the CUDA build); else the CPU wheel."""
    try:
        import torch  # noqa: F401
        return
    except ImportError:
        pass
    if not slicer.util.confirmOkCancelDisplay(f"{requester} needs PyTorch (several hundred MB). Install it now?"):
        raise RuntimeError("PyTorch installation declined")
    try:
        import PyTorchUtils

        if PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=False) is not None:
            return
    except ImportError:
        pass
    slicer.util.pip_install("torch torchvision")


class BackgroundJob:
    """Run ``work(progress, cancel)`` in a thread; ``done(result, error)`` runs on the main thread.

    ``work`` must not touch MRML or Qt. Progress is polled by a timer, so the UI stays live.
    """

    def __init__(self, work, done, onProgress=None, intervalMs: int = 100):
        self.fraction, self.message = 0.0, ""
        self.cancelled = False
        self._result = self._error = None
        self._done, self._onProgress = done, onProgress
        self._thread = threading.Thread(target=self._run, args=(work,), daemon=True)
        self._timer = qt.QTimer()
        self._timer.setInterval(intervalMs)
        self._timer.connect("timeout()", self._poll)

    def start(self) -> None:
        self._thread.start()
        self._timer.start()

    def cancel(self) -> None:
        self.cancelled = True

    def _progress(self, fraction: float, message: str = "") -> None:
        self.fraction, self.message = fraction, message

    def _run(self, work) -> None:
        try:
            self._result = work(self._progress, lambda: self.cancelled)
        except Exception as error:  # reported on the main thread
            self._error = error

    def _poll(self) -> None:
        if self._onProgress:
            self._onProgress(self.fraction, self.message)
        if self._thread.is_alive():
            return
        self._timer.stop()
        self._done(self._result, self._error)
