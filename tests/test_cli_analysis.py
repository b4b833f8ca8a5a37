import json
import shutil

import numpy as np
import pydicom
import pytest

from rtsam.cli import main
from rtsam.io import read_rtdose, write_image
from rtsam.prompts.dose_box import dose_box
from rtsam.volume import Volume


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_fails(capsys, fragments, *argv):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, err


@pytest.fixture(scope="module")
def dose_ds(rt_case):
    return pydicom.dcmread(rt_case / "rtdose.dcm")


def modified_dose(ds, tmp_path, name, **changes):
    ds = ds.copy()
    for key, value in changes.items():
        setattr(ds, key, value)
    ds.save_as(tmp_path / name)
    return tmp_path / name


def ct_copy(rt_case, tmp_path, frame=None, slices=5):
    """A small CT series built from the one real slice: copies at z = -16.4 .. -4.4 mm (inside the
    high-dose region), optionally in another frame of reference."""
    folder = tmp_path / "ct"
    folder.mkdir()
    for n in range(slices):
        ct = pydicom.dcmread(rt_case / "ct.0.dcm")
        z = -16.4407 + 3 * n
        ct.ImagePositionPatient[2], ct.SliceLocation, ct.InstanceNumber = z, z, n + 1
        ct.SOPInstanceUID = ct.file_meta.MediaStorageSOPInstanceUID = f"{ct.SOPInstanceUID}.{n + 1}"
        if frame is not None:
            ct.FrameOfReferenceUID = frame
        ct.save_as(folder / f"ct{n}.dcm")
    return folder


def test_dose_box_json_matches_the_function(rt_case, capsys):
    code, out, _ = run(capsys, "dose-box", rt_case / "rtdose.dcm", "--margin-mm", 5, "--json")
    assert code == 0
    result = json.loads(out)
    expected = dose_box(read_rtdose(rt_case / "rtdose.dcm"), margin_mm=5).to_dict()
    assert result["box_lps_mm"] == expected["box_lps_mm"] and result["box_ijk"] == expected["box_ijk"]
    assert {"dmax_gy", "threshold_gy", "voxels"} <= set(result)
    assert result["threshold_gy"] == pytest.approx(0.8 * result["dmax_gy"], abs=1e-3)
    assert result["dose_summation_type"] == "PLAN"


def test_dose_box_on_a_reference_with_a_shift_report(rt_case, tmp_path, capsys):
    folder = ct_copy(rt_case, tmp_path)
    code, out, _ = run(capsys, "dose-box", rt_case / "rtdose.dcm", "--reference", folder, "--shift-report", "--json")
    assert code == 0
    result = json.loads(out)
    assert result["box_ijk_grid"] == "reference"
    assert (result["box_ijk"][0][2], result["box_ijk"][1][2]) == (0, 4)  # all 5 slices lie in the box
    rows = result["shift_report"]
    assert len(rows) == 30 and all(0 < r["iou"] < 1 for r in rows if r["axis"] != "S")
    assert all(r["iou"] == 1.0 for r in rows if r["axis"] == "S")  # clipped to the 5 slices either way
    code, out, _ = run(capsys, "dose-box", rt_case / "rtdose.dcm", "--threshold", 0.5)
    assert code == 0 and "box_lps_mm" in out and "voxels" in out


def test_dvh_json_and_table(rt_case, capsys):
    code, out, _ = run(capsys, "dvh", rt_case / "rtdose.dcm", rt_case / "rtss.dcm", "--structures", "Tumor Bed", "Heart", "--json")
    assert code == 0
    rows = json.loads(out)
    assert [r["name"] for r in rows] == ["Tumor Bed", "Heart"]
    assert set(rows[0]) == {"name", "volume_cc", "min_gy", "mean_gy", "max_gy", "d95_gy", "d2_gy"}
    assert rows[0]["mean_gy"] == pytest.approx(14.29, abs=0.05)
    code, out, _ = run(capsys, "dvh", rt_case / "rtdose.dcm", rt_case / "rtss.dcm", "--structures", "scar")
    assert code == 0 and out.splitlines()[0].split()[:3] == ["name", "volume_cc", "min_gy"] and "Scar" in out
    assert out.splitlines()[-1] == "dose summation type: PLAN"


def test_evaluate_json_and_empty_masks(tmp_path, capsys):
    array = np.zeros((8, 9, 10), np.uint8)
    array[2:6, 2:7, 3:8] = 1
    write_image(Volume(array, (0.8, 0.8, 2.0)), tmp_path / "truth.nrrd")
    write_image(Volume(np.roll(array, 1, axis=2), (0.8, 0.8, 2.0)), tmp_path / "pred.nrrd")
    write_image(Volume(np.zeros_like(array), (0.8, 0.8, 2.0)), tmp_path / "empty.nrrd")
    code, out, _ = run(capsys, "evaluate", tmp_path / "pred.nrrd", tmp_path / "truth.nrrd", "--json")
    result = json.loads(out)
    assert code == 0 and result["dice"] == pytest.approx(0.8) and result["hd95_mm"] == pytest.approx(0.8)
    assert result["volume_error_ml"] == pytest.approx(0.0)
    code, out, _ = run(capsys, "evaluate", tmp_path / "empty.nrrd", tmp_path / "truth.nrrd", "--json")
    result = json.loads(out)
    assert code == 0 and result["dice"] == 0.0 and result["hd95_mm"] == "inf" and result["precision"] is None
    code, out, _ = run(capsys, "evaluate", tmp_path / "empty.nrrd", tmp_path / "empty.nrrd")
    assert code == 0 and "dice" in out


@pytest.mark.filterwarnings("ignore:Invalid value for VR DS")
def test_bad_dose_inputs(rt_case, dose_ds, tmp_path, capsys):
    text = tmp_path / "notes.txt"
    text.write_text("not dicom")
    assert_fails(capsys, ["missing.dcm", "not found"], "dose-box", tmp_path / "missing.dcm")
    assert_fails(capsys, ["notes.txt", "not a DICOM"], "dose-box", text)
    assert_fails(capsys, ["rtplan.dcm", "RTPLAN", "expected RTDOSE"], "dose-box", rt_case / "rtplan.dcm")
    assert_fails(capsys, ["rtplan.dcm", "expected RTDOSE"], "dvh", rt_case / "rtplan.dcm", rt_case / "rtss.dcm")
    zeros = modified_dose(dose_ds, tmp_path, "zero.dcm", PixelData=bytes(len(dose_ds.PixelData)))
    assert_fails(capsys, ["zero.dcm", "zero everywhere"], "dose-box", zeros)
    nan = modified_dose(dose_ds, tmp_path, "nan.dcm", DoseGridScaling="NaN")
    assert_fails(capsys, ["nan.dcm", "NaN"], "dose-box", nan)


def test_dose_and_image_that_do_not_fit(rt_case, tmp_path, capsys):
    far = tmp_path / "far.nrrd"
    write_image(Volume(np.zeros((4, 5, 6), np.int16), origin=(900.0, 900.0, 900.0)), far)
    assert_fails(capsys, ["rtdose.dcm", "does not overlap", "far.nrrd"], "dose-box", rt_case / "rtdose.dcm", "--reference", far)
    other = ct_copy(rt_case, tmp_path, frame="1.2.3.4")
    assert_fails(capsys, ["rtdose.dcm", "frame of reference", "1.2.3.4"],
                 "dose-box", rt_case / "rtdose.dcm", "--reference", other)
    code, out, _ = run(capsys, "dose-box", rt_case / "rtdose.dcm", "--reference", other, "--allow-frame-mismatch", "--json")
    assert code == 0 and json.loads(out)["box_ijk_grid"] == "reference"


def test_bad_structure_and_mask_inputs(rt_case, tmp_path, capsys):
    assert_fails(capsys, ["rtss.dcm", "no structure named 'Liver'", "Tumor Bed"],
                 "dvh", rt_case / "rtdose.dcm", rt_case / "rtss.dcm", "--structures", "Heart", "Liver")
    assert_fails(capsys, ["rtdose.dcm", "expected RTSTRUCT"], "dvh", rt_case / "rtdose.dcm", rt_case / "rtdose.dcm")
    write_image(Volume(np.ones((4, 5, 6), np.uint8)), tmp_path / "a.nrrd")
    write_image(Volume(np.ones((4, 5, 6), np.uint8), spacing=(1.0, 1.0, 2.0)), tmp_path / "b.nrrd")
    assert_fails(capsys, ["a.nrrd", "different grids"], "evaluate", tmp_path / "a.nrrd", tmp_path / "b.nrrd")
    assert_fails(capsys, ["nothing.nrrd", "not found"], "evaluate", tmp_path / "nothing.nrrd", tmp_path / "b.nrrd")
    rtss = pydicom.dcmread(rt_case / "rtss.dcm")
    rtss.ReferencedFrameOfReferenceSequence[0].FrameOfReferenceUID = "1.2.3.4"
    rtss.save_as(tmp_path / "other_frame.dcm")
    assert_fails(capsys, ["other_frame.dcm", "frame of reference 1.2.3.4 differs"],
                 "dvh", rt_case / "rtdose.dcm", tmp_path / "other_frame.dcm", "--structures", "Scar")
    shutil.copy(rt_case / "rtss.dcm", tmp_path / "copy.nrrd")
    assert_fails(capsys, ["copy.nrrd"], "evaluate", tmp_path / "copy.nrrd", tmp_path / "b.nrrd")
