"""The first-use installer (RTSAMCommon.slicer_app.ensureDependencies) on Slicer 5.10 and 5.12 paths.
Qt cannot run here: the dialogs (slicer.util.*Display, the progress dialog, the cursor) are replaced by
recorders; what is checked is which pip path runs with which arguments, and that a failed pip
install is reported instead of raised."""

import subprocess
import sys
import types
from pathlib import Path

import pytest

slicer = pytest.importorskip("slicer")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "RTInjurySAM"))


@pytest.fixture
def app(monkeypatch):
    """slicer_app with recorded dialogs; ``calls`` collects (what, args)."""
    calls = []
    qt = types.SimpleNamespace(Qt=types.SimpleNamespace(WaitCursor=0), QTimer=object)
    monkeypatch.setitem(sys.modules, "qt", qt)
    monkeypatch.setattr(slicer, "app", types.SimpleNamespace(processEvents=lambda: None, setOverrideCursor=lambda c: None,
                                                             restoreOverrideCursor=lambda: None), raising=False)
    dialog = types.SimpleNamespace(close=lambda: None)
    monkeypatch.setattr(slicer.util, "createProgressDialog", lambda **kw: dialog)
    monkeypatch.setattr(slicer.util, "confirmOkCancelDisplay", lambda text, **kw: calls.append(("confirm", text)) or True)
    monkeypatch.setattr(slicer.util, "errorDisplay", lambda text, **kw: calls.append(("error", text)))
    monkeypatch.delitem(sys.modules, "RTSAMCommon.slicer_app", raising=False)
    from RTSAMCommon import dependencies, slicer_app

    monkeypatch.setattr(dependencies, "missing_requirements", lambda: ["fastapi==0.165.0"])
    monkeypatch.setattr(dependencies, "missing_torch", lambda: ["torch==2.14.1"])
    monkeypatch.setattr(dependencies, "driver_cuda_version", lambda: None)
    return slicer_app, calls


def test_slicer_5_10_installs_with_pip_install_and_constraints(app, monkeypatch):
    slicer_app, calls = app
    monkeypatch.delattr(slicer, "packaging", raising=False)
    monkeypatch.setitem(sys.modules, "slicer.packaging", None)  # Slicer 5.10: no such module
    constraints = []

    def pip_install(args):
        calls.append(("pip", args))
        constraints.append(Path(args[args.index("-c") + 1]).read_text())

    monkeypatch.setattr(slicer.util, "pip_install", pip_install)
    assert slicer_app.ensureDependencies("RTInjurySAM")
    confirm = calls[0][1]
    assert "torch==2.14.1" in confirm and "no NVIDIA driver found: the CPU build" in confirm and "fastapi" in confirm
    torch_args, package_args = calls[1][1], calls[2][1]
    assert torch_args[:4] == ["torch==2.14.1", "torchvision==0.29.1", "--index-url", "https://download.pytorch.org/whl/cpu"]
    assert package_args[0] == "fastapi==0.165.0"
    import numpy

    assert f"numpy=={numpy.__version__}" in constraints[0].split()  # Slicer's numpy is never upgraded


def test_slicer_5_12_uses_pip_ensure(app, monkeypatch):
    slicer_app, calls = app
    monkeypatch.setattr(slicer.util, "pip_install", lambda args: calls.append(("pip", args)))
    packaging = types.ModuleType("slicer.packaging")
    packaging.pip_ensure = lambda packages, **kw: calls.append(("pip_ensure", packages, kw,
                                                                Path(kw["constraints"]).read_text()))
    monkeypatch.setitem(sys.modules, "slicer.packaging", packaging)
    monkeypatch.setattr(slicer, "packaging", packaging, raising=False)
    assert slicer_app.ensureDependencies("ITV4DCT")
    _, packages, options, constraints = calls[-1]
    assert packages == ["fastapi==0.165.0"] and options["prompt_install"] is False  # asked once already
    assert options["requester"] == "ITV4DCT" and "numpy==" in constraints


def test_a_failed_pip_install_is_reported_not_raised(app, monkeypatch):
    slicer_app, calls = app
    monkeypatch.setitem(sys.modules, "slicer.packaging", None)

    def fail(args):
        raise subprocess.CalledProcessError(1, ["PythonSlicer", "-m", "pip", "install"])

    monkeypatch.setattr(slicer.util, "pip_install", fail)
    assert slicer_app.ensureDependencies("RTInjurySAM") is False
    assert calls[-1][0] == "error" and "Installing the Python packages for RTInjurySAM failed" in calls[-1][1]


def test_declining_installs_nothing(app, monkeypatch):
    slicer_app, calls = app
    monkeypatch.setattr(slicer.util, "confirmOkCancelDisplay", lambda text, **kw: False)
    monkeypatch.setattr(slicer.util, "pip_install", lambda args: calls.append(("pip", args)))
    assert slicer_app.ensureDependencies("RTInjurySAM") is False and not calls
