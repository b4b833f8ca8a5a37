"""Where segmentation runs: in this process (local) or on an rtsam server (remote).

A backend is a strategy object injected into the module logics. ``open_session`` gives an
object with the ``rtsam.session.Session`` interface (set_task, set_box, add_click,
remove_click, undo, redo, predict), so the logics never care where the model runs.
"""

from __future__ import annotations

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


class LocalBackend:
    """Engines loaded in this process, shared by both modules and kept for the next call.
    ``weights`` maps engine names to the user's weights (file or folder) for engines that ship none;
    an empty path (an empty path field gives ".") means the engine's own."""

    kind = "local"
    _engines: dict[tuple, object] = {}

    def __init__(self, device: str = "auto", weights: dict[str, str] | None = None):
        self.device, self.device_note = torch_device(device)
        self.weights = {name: str(path) for name, path in (weights or {}).items() if str(path) not in ("", ".")}

    def engine(self, name: str | None):
        from rtsam.engines.registry import DEFAULT_ENGINE, load_engine

        name = name or DEFAULT_ENGINE
        key = (name, self.device, self.weights.get(name))
        if key not in LocalBackend._engines:
            check_gpu_memory(self.device, ENGINE_GPU_GIB)
            LocalBackend._engines[key] = load_engine(name, key[2], self.device)
        return LocalBackend._engines[key]

    def open_session(self, image: Volume, engine: str | None = None):
        from rtsam.session import Session

        return Session(image, self.engine(engine))

    def test_connection(self) -> str:
        from rtsam.engines.registry import engine_names

        return f"local: {self.device_note}; engines: {', '.join(engine_names())}"


class RemoteBackend:
    """An rtsam server (``rtsam serve``) through rtsam.client; the key is sent, never stored."""

    kind = "remote"

    def __init__(self, url: str, api_key: str = "", timeout_s: float = 120.0):
        from rtsam.client import RemoteEngine

        self.url = url
        self._engine = RemoteEngine(url, api_key=api_key or None, timeout=timeout_s)

    def engine(self, name: str | None = None):
        """The server's engine (the server decides which model it runs)."""
        return self._engine

    def open_session(self, image: Volume, engine: str | None = None):
        from rtsam.client import open_session

        return open_session(image, self._engine)

    def test_connection(self) -> str:
        info = self._engine.test_connection()
        return f"remote {self.url}: " + ", ".join(f"{k}={v}" for k, v in info.items())


def make_backend(kind: str = "local", url: str = "", api_key: str = "", device: str = "auto",
                 weights: dict[str, str] | None = None):
    """The backend chosen in the UI: "local" (this process, with the user's ``weights`` per engine)
    or "remote" (server URL + API key; the server has its own weights)."""
    if kind == "remote":
        if not url:
            raise InputError("enter the server URL for the remote backend")
        return RemoteBackend(url, api_key)
    return LocalBackend(device, weights)
