"""rtsam on Slicer 5.10's bundled pydicom 2.4.4 (SuperBuild/External_python-dicom-requirements.cmake @ v5.10.0):
pydicom 2.4.4 is installed into a private folder that shadows the venv's pydicom 3, and
pydicom2_scenario.py runs there in a subprocess on real data."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("slicer")
HERE = Path(__file__).resolve().parent
SLICER_5_10_PYDICOM = "2.4.4"


@pytest.fixture(scope="module")
def pydicom2(tmp_path_factory):
    target = tmp_path_factory.mktemp("pydicom2")
    done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target),
                           f"pydicom=={SLICER_5_10_PYDICOM}"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return target


def test_rtsam_dicom_works_on_slicer_5_10_pydicom(pydicom2):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(pydicom2), os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run([sys.executable, str(HERE / "pydicom2_scenario.py")], capture_output=True, text=True,
                          env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["pydicom"] == SLICER_5_10_PYDICOM
    assert out["series_shape_equal"] and out["rtstruct_equal"] and out["dose_max"] > 10.0
    assert "DICOM SEG export needs pydicom 3" in out["seg_refusal"] and "2.4.4" in out["seg_refusal"]
