"""The torch device every model-running command and API uses: ``auto`` (the default) picks the GPU
when CUDA is available, else the CPU. One helper for the CLI, the server, training and Slicer."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import InputError

if TYPE_CHECKING:
    import torch

AUTO = "auto"
DEVICE_HELP = "torch device: auto (CUDA when available, else CPU; the default), cpu, cuda, cuda:1"


def resolve_device(name: str | None = AUTO) -> str:
    """``auto``/None -> ``cuda`` when available else ``cpu``; other names are checked and returned."""
    import torch

    name = (name or AUTO).strip().lower()
    if name == AUTO:
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise InputError(f"unknown device '{name}' (auto, cpu, cuda, cuda:N)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"--device {name} asked for, but no CUDA GPU is available (use --device auto or cpu)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise InputError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) present")
    return name


def gpu_name(device: str | torch.device) -> str | None:
    """The GPU's name for a CUDA device, else None."""
    import torch

    try:
        device = torch.device(device)
    except (RuntimeError, TypeError):  # e.g. a remote engine's URL
        return None
    if device.type != "cuda" or not torch.cuda.is_available():
        return None
    return torch.cuda.get_device_name(device)


def device_info(device: str | torch.device) -> dict:
    """``{"device", "gpu"}`` for JSON outputs (gpu None on the CPU)."""
    return {"device": str(device), "gpu": gpu_name(device)}


def platform_info(device: str | torch.device) -> dict:
    """``device_info`` plus torch and CUDA versions (benchmark records)."""
    import torch

    return {**device_info(device), "torch": torch.__version__, "cuda": torch.version.cuda}


def add_device_argument(parser) -> None:
    parser.add_argument("--device", default=AUTO, help=DEVICE_HELP)


def synchronize(device: str | torch.device) -> None:
    """Wait for queued GPU work (timings); nothing on the CPU."""
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)
