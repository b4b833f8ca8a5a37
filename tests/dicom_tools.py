"""External DICOM tools for the tests (Debian dicom3tools, orthanc): in CI (CI=true) a missing
tool fails the test, elsewhere it skips with the package to install."""

import os
import shutil
import subprocess

import pytest

PACKAGES = {"dciodvfy": "dicom3tools", "Orthanc": "orthanc"}
SEARCH_PATH = os.environ.get("PATH", "") + ":/usr/sbin:/usr/local/sbin"


def require_tool(name: str) -> str:
    """Full path of a program; fails in CI and skips elsewhere when it is not installed."""
    path = shutil.which(name, path=SEARCH_PATH)
    if path:
        return path
    missing(f"{name} not found: apt-get install {PACKAGES.get(name, name)} (.ci/run installs it)")


def missing(message: str) -> None:
    """Fail in CI, skip elsewhere."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message)
    pytest.skip(message)


def dciodvfy_errors(path) -> list[str]:
    """The errors ``dciodvfy -new`` reports for one DICOM file (warnings left out)."""
    result = subprocess.run([require_tool("dciodvfy"), "-new", str(path)], capture_output=True, text=True, timeout=60)
    lines = (result.stdout + result.stderr).splitlines()
    return [f"{path}: {line}" for line in lines if line.startswith("Error")]
