"""What rtsam needs in Slicer's Python, without Qt: the pinned requirements, what is missing,
which PyTorch build fits the machine, and what the bundled pydicom allows.

Used by ``slicer_app.ensureDependencies`` (the first-use installer) and by the self-tests (which
skip with this module's message when packages are missing: Slicer's testing mode installs nothing).
"""

from __future__ import annotations

import importlib.metadata
import re
import shutil
import subprocess
import sys
from pathlib import Path

# RTSAMCommon/ sits beside Resources/ in the source tree and in Slicer's qt-scripted-modules folder
REQUIREMENTS = Path(__file__).resolve().parent.parent / "Resources" / "RTSAM-requirements.txt"
BUNDLED = ("numpy", "scipy", "SimpleITK", "pydicom")  # shipped with Slicer: constrained, never upgraded
TORCH = ("torch==2.14.1", "torchvision==0.29.1")  # the pair this repository tests
HIGHDICOM = "highdicom==0.28.2"  # DICOM SEG export; needs pydicom >= 3.0.1
# PyTorch wheel indexes by the newest CUDA the NVIDIA driver supports (as SlicerPyTorch's
# PyTorchUtils picks a computation backend); below the oldest: the CPU build.
TORCH_CUDA_INDEXES = ((13, 0, "cu130"), (12, 8, "cu128"), (12, 6, "cu126"))
TORCH_INDEX_URL = "https://download.pytorch.org/whl/{}"


def load_requirements(path: Path = REQUIREMENTS) -> list[str]:
    """The requirement lines of a requirements file (comments and blank lines dropped)."""
    lines = (line.split("#", 1)[0].strip() for line in Path(path).read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line]


def installed_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def is_satisfied(requirement: str) -> bool:
    """True when ``name==version`` (or a bare name) is installed at that version."""
    name, _, version = requirement.partition("==")
    found = installed_version(name.strip())
    return found is not None and (not version or found == version.strip())


def pydicom_major() -> int:
    version = installed_version("pydicom") or "0"
    return int(re.match(r"\d+", version).group())


def dicom_seg_unavailable() -> str | None:
    """Why DICOM SEG export cannot run here, or None when it can (highdicom >= 0.23 needs pydicom 3)."""
    if pydicom_major() >= 3:
        return None
    return (f"DICOM SEG export needs pydicom 3 (bundled with Slicer 5.12 and later); this Slicer bundles pydicom "
            f"{installed_version('pydicom')}, which is never upgraded. Export DICOM RTSTRUCT or .seg.nrrd instead.")


def requirements(path: Path = REQUIREMENTS) -> list[str]:
    """Everything to install besides PyTorch: the file, plus highdicom where pydicom allows it."""
    wanted = load_requirements(path)
    return wanted + [HIGHDICOM] if dicom_seg_unavailable() is None else wanted


def missing_requirements(path: Path = REQUIREMENTS) -> list[str]:
    return [r for r in requirements(path) if not is_satisfied(r)]


def missing_torch() -> list[str]:
    return [r for r in TORCH if installed_version(r.split("==")[0]) is None]


def bundled_constraints() -> list[str]:
    """``name==version`` of the bundled packages as installed (pip constraints: never upgrade them)."""
    return [f"{name}=={installed_version(name)}" for name in BUNDLED if installed_version(name)]


def driver_cuda_version() -> tuple[int, int] | None:
    """The newest CUDA version the NVIDIA driver supports (``nvidia-smi``), or None without one."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    try:
        text = subprocess.run([smi], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    found = re.search(r"CUDA Version:\s*(\d+)\.(\d+)", text)
    return (int(found.group(1)), int(found.group(2))) if found else None


def torch_build(cuda: tuple[int, int] | None = None, platform: str = sys.platform) -> tuple[str, str | None, str]:
    """(build tag, pip index URL or None for PyPI's default, sentence saying what was chosen and why)."""
    if platform == "darwin":
        return "default", None, "macOS: PyTorch's standard build (Metal, no CUDA)"
    if cuda is None:
        return "cpu", TORCH_INDEX_URL.format("cpu"), "no NVIDIA driver found: the CPU build of PyTorch"
    for major, minor, tag in TORCH_CUDA_INDEXES:
        if cuda >= (major, minor):
            return tag, TORCH_INDEX_URL.format(tag), (f"NVIDIA driver supports CUDA {cuda[0]}.{cuda[1]}: "
                                                      f"the PyTorch build for CUDA {major}.{minor} ({tag})")
    return "cpu", TORCH_INDEX_URL.format("cpu"), (f"NVIDIA driver supports only CUDA {cuda[0]}.{cuda[1]} (PyTorch "
                                                  "needs 12.6 or newer): the CPU build of PyTorch; update the driver "
                                                  "for GPU inference")


def torch_pip_args(cuda: tuple[int, int] | None = None, platform: str = sys.platform) -> list[str]:
    """``pip install`` arguments for the PyTorch pair on this machine."""
    _, index, _ = torch_build(cuda, platform)
    return [*TORCH] + (["--index-url", index] if index else [])
