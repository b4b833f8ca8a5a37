"""Every DICOM object the project writes passes dicom3tools' ``dciodvfy -new`` without errors:
CT slices (one series per phase and one series for all phases), SEG and RTSTRUCT with several
segments on axial and oblique series of the real brain1 MR and lesion."""

import numpy as np
import pytest

from dicom_tools import dciodvfy_errors, require_tool
from rtsam.io.dicom_export import write_dicom_seg, write_rtstruct
from rtsam.itv.dicom4d import write_dicom_phases
from test_dicom_export import ENGINE, brain, case, edited_label  # noqa: F401 (fixtures)


def all_errors(paths) -> list[str]:
    return [error for path in paths for error in dciodvfy_errors(path)]


@pytest.mark.parametrize("one_series", [False, True])
def test_ct_phases_have_no_errors(brain, tmp_path, one_series):
    require_tool("dciodvfy")
    image, _ = brain
    phases = [image.with_array(np.roll(image.array, shift, axis=0)) for shift in (0, 1, 2)]
    folder = write_dicom_phases(phases, tmp_path / "4dct", [0.0, 30.0, 60.0], one_series=one_series)
    files = sorted(folder.glob("*.dcm"))
    assert len(files) == 3 * image.array.shape[0]
    assert all_errors(files) == []


def test_seg_and_rtstruct_have_no_errors(case, tmp_path):
    require_tool("dciodvfy")
    reference, mask, _, _ = case
    segments = {"Cerebral radiation necrosis": mask, "Edited lesion": mask.with_array(edited_label(mask.array)),
                "Tumour": mask}
    seg = write_dicom_seg(segments, reference, tmp_path / "seg.dcm", ENGINE)
    rtstruct = write_rtstruct(segments, reference, tmp_path / "rtss.dcm", ENGINE)
    manual = write_rtstruct({"Lesion": mask}, reference, tmp_path / "manual.dcm")
    assert all_errors([seg, rtstruct, manual, *reference.volume.metadata["files"]]) == []


def test_dciodvfy_finds_errors(case, tmp_path):
    """The check can fail: an RTSTRUCT without its frame of reference is reported."""
    import pydicom

    reference, mask, _, _ = case
    path = write_rtstruct({"Lesion": mask}, reference, tmp_path / "rtss.dcm")
    ds = pydicom.dcmread(path)
    del ds.FrameOfReferenceUID
    ds.save_as(path)
    assert any("FrameOfReferenceUID" in e for e in dciodvfy_errors(path))
