"""Helpers that need the Slicer application (Qt): first-use installation, background jobs, the
backend panel and the local server's lifetime. Imported by the module files (qt is bundled with
Slicer); the headless logic never imports it.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import tempfile
import threading
import traceback
from pathlib import Path

import qt
import slicer

from . import dependencies


def ensureDependencies(requester: str) -> bool:
    """Install what is missing on first use, after one confirmation (main thread); False when the
    user declines or the installation fails (the error is shown, never raised)."""
    packages, torch = dependencies.missing_requirements(), dependencies.missing_torch()
    if not packages and not torch:
        return True
    _, _, torchChoice = dependencies.torch_build(dependencies.driver_cuda_version())
    lines = [f"{requester} needs Python packages that are not installed in Slicer's Python yet:"]
    if torch:
        lines.append(f"- PyTorch ({', '.join(torch)}; {torchChoice}; 1 to 3 GB)")
    if packages:
        lines.append(f"- {', '.join(packages)}")
    lines.append("Install them now? (Slicer's own numpy, scipy, SimpleITK and pydicom are kept as they are; "
                 "a restart may be needed afterwards.)")
    if not slicer.util.confirmOkCancelDisplay("\n".join(lines), windowTitle=f"{requester}: install packages"):
        return False
    try:
        with _constraintsFile() as constraints:
            if torch:
                _installTorch(constraints)
            if packages:
                _installPackages(packages, constraints, requester)
    except Exception as error:  # pip failed: report it here, never as an escaped exception
        logging.error("%s: package installation failed", requester, exc_info=error)
        slicer.util.errorDisplay(f"Installing the Python packages for {requester} failed: {error}",
                                 detailedText=traceback.format_exc())
        return False
    return True


@contextlib.contextmanager
def _constraintsFile():
    """A pip constraints file pinning the bundled packages at their installed versions."""
    with tempfile.TemporaryDirectory(prefix="rtsam-pip-") as folder:
        path = Path(folder) / "slicer-bundled-constraints.txt"
        path.write_text("\n".join(dependencies.bundled_constraints()) + "\n", encoding="utf-8")
        yield str(path)


def _installTorch(constraints: str) -> None:
    """The PyTorch pair this repository tests, in the build ``dependencies.torch_build`` picks from the NVIDIA
    driver (SlicerPyTorch's PyTorchUtils picks the same way with light-the-torch, but imports torch into
    Slicer's process, which the local server design avoids)."""
    with _busy("Installing PyTorch (this takes a few minutes)..."):
        slicer.util.pip_install(dependencies.torch_pip_args(dependencies.driver_cuda_version()) + ["-c", constraints])


def _installPackages(packages: list[str], constraints: str, requester: str) -> None:
    """``slicer.packaging.pip_ensure`` (Slicer 5.12+, own progress dialog), else ``slicer.util.pip_install``."""
    try:  # a submodule that "import slicer" does not load (5.12's module template imports it too)
        packaging = importlib.import_module("slicer.packaging")
    except ImportError:  # Slicer 5.10: no slicer.packaging
        with _busy(f"Installing {len(packages)} Python packages for {requester}..."):
            slicer.util.pip_install(packages + ["-c", constraints])
        return
    packaging.pip_ensure(packages, constraints=constraints, prompt_install=False, requester=requester)


@contextlib.contextmanager
def _busy(text: str):
    """An indeterminate progress dialog and wait cursor around a blocking call."""
    dialog = slicer.util.createProgressDialog(labelText=text, maximum=0)
    slicer.app.processEvents()
    slicer.app.setOverrideCursor(qt.Qt.WaitCursor)
    try:
        yield
    finally:
        slicer.app.restoreOverrideCursor()
        dialog.close()


def localServerLogDir() -> str:
    """Slicer's temporary folder: the local server's log lands beside Slicer's own files."""
    return str(Path(slicer.app.temporaryPath) / "RTSAM")


_stopOnQuitConnected = False


def stopLocalServersOnQuit() -> None:
    """Stop the local rtsam servers when Slicer quits (also registered with atexit by the launcher)."""
    global _stopOnQuitConnected
    if not _stopOnQuitConnected:
        from rtsam.client.local_process import stop_all

        slicer.app.connect("aboutToQuit()", stop_all)
        _stopOnQuitConnected = True


def showLocalServerLogs() -> None:
    """The local servers' logs (tail; a crashed server's too) in a dialog; paths in the Python console."""
    from rtsam.client.local_process import known_servers

    servers = known_servers()
    if not servers:
        slicer.util.infoDisplay("No local rtsam server was started yet (it starts with the first Apply).")
        return
    for server in servers:
        logging.info("rtsam local server %s: log %s", server.engine_name, server.log_path)
    slicer.util.infoDisplay("\n\n".join(f"{server!r}" for server in servers),
                            windowTitle="Local rtsam servers",
                            detailedText="\n\n".join(f"--- {s.log_path}\n{s.log_tail(200)}" for s in servers))


class BackgroundJob:
    """Run ``work(progress, cancel)`` in a thread; ``done(result, error)`` runs on the main thread.

    ``work`` must not touch MRML or Qt: it waits on the rtsam server (local or remote), so the
    model never runs in Slicer's process. Progress is polled by a timer, so the UI stays live.
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
        except Exception as error:  # reported on the main thread, with its traceback
            self._error = error

    def _poll(self) -> None:
        if self._onProgress:
            self._onProgress(self.fraction, self.message)
        if self._thread.is_alive():
            return
        self._timer.stop()
        self._done(self._result, self._error)


class BackgroundWorkMixin:
    """For a module widget with ``ui.cancelButton``, ``ui.progressBar``, ``ui.statusLabel`` and
    ``_updateGui()``: ``runInBackground(work, onResult)`` runs ``work(progress, cancel)`` in a thread
    (it waits on the rtsam server) and ``onResult(result)`` on the main thread; one job at a time."""

    requester = ""
    _job = None

    def runInBackground(self, work, onResult) -> None:
        self._job = BackgroundJob(work, lambda result, error: self._onJobDone(result, error, onResult),
                                  self._onProgress)
        self.ui.cancelButton.enabled = True
        self._updateGui()
        self._job.start()

    def onCancel(self) -> None:
        if self._job:
            self._job.cancel()

    def _onProgress(self, fraction: float, message: str) -> None:
        self.ui.progressBar.value = int(100 * fraction)
        self.ui.statusLabel.text = message

    def _onJobDone(self, result, error, onResult) -> None:
        self._job = None
        self.ui.cancelButton.enabled = False
        try:
            if error is not None:
                reportJobError(self.requester, error, self.ui.statusLabel)
                return
            with slicer.util.tryWithErrorDisplay(f"{self.requester}: could not show the result."):
                onResult(result)
        finally:
            self._updateGui()


class BackendPanelMixin(BackgroundWorkMixin):
    """The backend section both modules share: local / remote with engine and weights (parameter node),
    the API key (kept in memory, never in the scene), Test connection and the local server's log."""

    _apiKey = ""

    def backend(self):
        from .backends import make_backend

        node = self._parameterNode
        return make_backend(node.backend, node.serverUrl, self._apiKey, weights={node.engine: node.weights},
                            engine=node.engine, log_dir=localServerLogDir())

    def setApiKey(self, text: str) -> None:
        self._apiKey = text

    def onTestConnection(self) -> None:
        """Starts the local server when needed (with progress): says which device and weights it runs."""
        if self._job is not None or not ensureDependencies(self.requester):
            return
        with slicer.util.tryWithErrorDisplay("Connection failed."):
            backend = self.backend()
            self.runInBackground(lambda progress, cancel: backend.test_connection(progress, cancel),
                                 self._onConnectionTested)

    def _onConnectionTested(self, text: str) -> None:
        self.ui.connectionLabel.text = text

    def onShowLog(self) -> None:
        showLocalServerLogs()


def reportJobError(requester: str, error: Exception, statusLabel) -> None:
    """Show a worker's error (a cancel only in the status line); log it with the worker's traceback."""
    statusLabel.text = str(error)
    if type(error).__name__ == "CancelledError":
        return
    logging.error("%s failed", requester, exc_info=error)  # exc_info: the traceback from the worker thread
    slicer.util.errorDisplay(f"{requester} failed: {error}")
