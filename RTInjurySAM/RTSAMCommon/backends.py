"""Where segmentation runs: a private ``rtsam serve`` on loopback (local), an rtsam server (remote),
or this process (in-process: scripts and tests only, never the Slicer UI).

A backend is a strategy object injected into the module logics. ``open_session`` gives an
object with the ``rtsam.session.Session`` interface (set_task, set_box, add_click,
remove_click, undo, redo, predict); ``run_itv`` runs the ITV pipeline. Local and remote share
one client path (``rtsam.client``): only where the server comes from differs. Nothing here
imports torch or the HTTP client at module load.
"""

from __future__ import annotations

import shutil
import sys

from rtsam.errors import InputError
from rtsam.volume import Volume


def torch_device(preferred: str = "auto") -> tuple[str, str]:
    """(device, note): ``rtsam.devices.resolve_device`` (CUDA when present and asked for, else CPU)
    with a readable reason."""
    import torch

    from rtsam.devices import gpu_name, resolve_device

    device = resolve_device(preferred)
    if device.startswith("cuda"):
        free, total = torch.cuda.mem_get_info(device)
        return device, f"GPU {gpu_name(device)} ({free / 2**30:.1f} of {total / 2**30:.1f} GiB free)"
    return "cpu", "CPU (chosen)" if preferred == "cpu" else "no CUDA GPU found: running on the CPU (slower)"


# GPU memory an engine needs (weights, one embedding, decoder): sam3d ViT-B peaks near 1.1 GiB
# of host memory per embedding on CPU (``rtsam bench``); LiteMedSAM is smaller.
ENGINE_GPU_GIB = 2.0


def check_gpu_memory(device: str, needed_gib: float) -> None:
    """Refuse a GPU job that cannot fit, before it starts, with a clear message."""
    if not device.startswith("cuda"):
        return
    import torch

    free, _ = torch.cuda.mem_get_info()
    if free / 2**30 < needed_gib:
        raise InputError(f"the GPU has {free / 2**30:.1f} GiB free but this job needs about {needed_gib:.1f} GiB; "
                         "close other GPU programs or choose the CPU")


def _user_weights(weights: dict | None) -> dict[str, str]:
    """Engine name -> the user's weights; an empty path field (Path() gives ".") means the engine's own."""
    return {name: str(path) for name, path in (weights or {}).items() if path and str(path) not in ("", ".")}


class InProcessBackend:
    """Engines loaded in this process and kept for the next call (scripts, tests; blocks the caller)."""

    kind = "inprocess"
    _engines: dict[tuple, object] = {}

    def __init__(self, device: str = "auto", weights: dict | None = None):
        self._preferred = device
        self._device: tuple[str, str] | None = None
        self.weights = _user_weights(weights)

    @property
    def device(self) -> str:
        if self._device is None:
            self._device = torch_device(self._preferred)
        return self._device[0]

    def engine(self, name: str | None = None, progress=None, cancel=None):
        from rtsam.engines.registry import DEFAULT_ENGINE, load_engine

        name = name or DEFAULT_ENGINE
        key = (name, self.device, self.weights.get(name))
        if key not in InProcessBackend._engines:
            check_gpu_memory(self.device, ENGINE_GPU_GIB)
            InProcessBackend._engines[key] = load_engine(name, key[2], self.device)
        return InProcessBackend._engines[key]

    def open_session(self, image: Volume, engine: str | None = None, progress=None, cancel=None):
        from rtsam.session import Session

        return Session(image, self.engine(engine))

    def run_itv(self, phases, prompt, init_mask, engine=None, propagation="rigid", progress=None, cancel=None):
        """The ITV pipeline here; the engine is loaded only when it has work."""
        from rtsam.itv.pipeline import run_itv

        needed = propagation == "engine" or init_mask is None
        return run_itv(phases, prompt, init_mask, self.engine(engine) if needed else None, propagation=propagation,
                       progress=progress, cancel=cancel)

    def test_connection(self, progress=None, cancel=None) -> str:
        from rtsam.engines.registry import engine_names

        note = torch_device(self._preferred)[1]
        return f"in-process: {note}; engines: {', '.join(engine_names())}"


class _ServerBackend:
    """What local and remote share: a ``RemoteEngine`` from ``engine()`` and the client calls."""

    def open_session(self, image: Volume, engine: str | None = None, progress=None, cancel=None):
        from rtsam.client import RemoteSession

        return RemoteSession(image, self.engine(engine, progress, cancel))

    def run_itv(self, phases, prompt, init_mask, engine=None, propagation="rigid", progress=None, cancel=None):
        """The ITV pipeline as a server job (progress and cancel follow it)."""
        from rtsam.client import run_remote_itv

        return run_remote_itv(self.engine(engine, progress, cancel), phases, prompt, init_mask, progress=progress,
                              cancel=cancel, propagation=propagation)

    def test_connection(self, progress=None, cancel=None) -> str:
        info = self.engine(self.engine_name, progress, cancel).test_connection()
        keys = ("engine", "weights", "device", "rtsam")
        return f"{self.label}: " + ", ".join(f"{k}={info[k]}" for k in keys if k in info)


class RemoteBackend(_ServerBackend):
    """An rtsam server (``rtsam serve``) elsewhere; the key is sent, never stored. The server decides
    which model it runs."""

    kind = "remote"
    engine_name = None

    def __init__(self, url: str, api_key: str = "", timeout_s: float = 120.0):
        from rtsam.client import RemoteEngine

        self.url = self.label = url
        self._engine = RemoteEngine(url, api_key=api_key or None, timeout=timeout_s)

    def engine(self, name: str | None = None, progress=None, cancel=None):
        return self._engine


def slicer_python() -> str:
    """The Python that runs the local server: Slicer's PythonSlicer (on PATH inside Slicer, as
    ``slicer.util._executePythonModule`` finds it), else this interpreter."""
    if "slicer" in sys.modules and hasattr(sys.modules["slicer"], "app"):
        found = shutil.which("PythonSlicer")
        if found:
            return found
    return sys.executable


class LocalBackend(_ServerBackend):
    """A private ``rtsam serve`` on loopback, one per (engine, weights), started on first use and shared
    by both modules (``rtsam.client.local_process``); the model never runs in Slicer's process."""

    kind = "local"
    label = "local"

    def __init__(self, device: str = "auto", weights: dict | None = None, engine: str | None = None,
                 log_dir: str | None = None):
        self.device, self.engine_name, self.log_dir = device, engine, log_dir
        self.weights = _user_weights(weights)

    def server(self, name: str | None = None):
        from rtsam.client.local_process import local_server

        name = name or self.engine_name
        return local_server(name, self.weights.get(name or ""), self.device, slicer_python(), self.log_dir)

    def engine(self, name: str | None = None, progress=None, cancel=None):
        """The server's ``RemoteEngine``; waits (with progress) while the server loads the model."""
        return self.server(name).wait_ready(progress=progress, cancel=cancel)


def make_backend(kind: str = "local", url: str = "", api_key: str = "", device: str = "auto",
                 weights: dict | None = None, engine: str | None = None, log_dir: str | None = None):
    """The backend chosen in the UI: "local" (a private server with the user's ``weights`` per
    engine), "remote" (server URL + API key; the server has its own weights) or "inprocess"."""
    if kind == "remote":
        if not url:
            raise InputError("enter the server URL for the remote backend")
        return RemoteBackend(url, api_key)
    if kind == "inprocess":
        return InProcessBackend(device, weights)
    return LocalBackend(device, weights, engine, log_dir)
