"""RTDOSE reading: the real plan-sum dose, synthetic variants of its header, and every bad input."""

import numpy as np
import pydicom
import pytest

from conftest import oblique_direction
from rtsam.errors import InputError
from rtsam.io import read_dataset, read_rtdose


@pytest.fixture(scope="module")
def real_dose(rt_case):
    return read_rtdose(rt_case / "rtdose.dcm")


def write_dose(tmp_path, template, pixels, name="dose.dcm", **tags):
    """An RTDOSE built from the real file's header with new pixels [frames, rows, cols] and tags."""
    ds = pydicom.dcmread(template)
    del ds.DVHSequence
    frames, rows, cols = pixels.shape
    ds.NumberOfFrames, ds.Rows, ds.Columns = frames, rows, cols
    ds.GridFrameOffsetVector = [3.0 * k for k in range(frames)]
    if pixels.dtype == np.float32:
        del ds.PixelData
        ds.FloatPixelData = pixels.tobytes()
    else:
        ds.PixelData = pixels.astype(np.uint32).tobytes()
    for key, value in tags.items():
        setattr(ds, key, value)
    ds.save_as(tmp_path / name)
    return tmp_path / name


def test_real_dose_values_and_geometry_follow_the_tags(real_dose, rt_case):
    ds = pydicom.dcmread(rt_case / "rtdose.dcm")
    assert real_dose.array.shape == (98, 129, 194)
    assert real_dose.array.dtype == np.float32
    assert real_dose.array.max() == pytest.approx(14.68, abs=0.01)
    raw_max = int(ds.pixel_array.max())
    assert real_dose.array.max() == pytest.approx(raw_max * float(ds.DoseGridScaling), rel=1e-6)
    assert real_dose.spacing == (2.5, 2.5, 3.0)
    assert real_dose.origin == pytest.approx([float(v) for v in ds.ImagePositionPatient])
    np.testing.assert_allclose(real_dose.direction, np.eye(3), atol=1e-12)
    # last frame lies at the last GridFrameOffsetVector value above the first
    last = real_dose.ijk_to_lps([0, 0, 97])
    assert last[2] == pytest.approx(float(ds.ImagePositionPatient[2]) + float(ds.GridFrameOffsetVector[-1]))
    assert real_dose.frame_of_reference_uid == ds.FrameOfReferenceUID
    assert real_dose.metadata["modality"] == "RTDOSE"
    assert real_dose.metadata["dose_summation_type"] == "PLAN"
    assert real_dose.metadata["path"].endswith("rtdose.dcm")


def test_absolute_frame_offsets_and_reversed_frames(tmp_path, rt_case):
    pixels = np.arange(4 * 3 * 5, dtype=np.uint32).reshape(4, 3, 5) + 1
    ipp = [-10.0, -20.0, 50.0]
    relative = read_rtdose(write_dose(tmp_path, rt_case / "rtdose.dcm", pixels, "rel.dcm", ImagePositionPatient=ipp))
    absolute = read_rtdose(write_dose(
        tmp_path, rt_case / "rtdose.dcm", pixels, "abs.dcm", ImagePositionPatient=ipp,
        GridFrameOffsetVector=[50.0, 53.0, 56.0, 59.0]))
    assert absolute.same_grid(relative)
    np.testing.assert_array_equal(absolute.array, relative.array)
    assert relative.origin == pytest.approx(ipp)
    # frames stored from top to bottom: sorted so that k increases along the normal
    reversed_ = read_rtdose(write_dose(
        tmp_path, rt_case / "rtdose.dcm", pixels[::-1].copy(), "rev.dcm",
        ImagePositionPatient=[-10.0, -20.0, 59.0], GridFrameOffsetVector=[0.0, -3.0, -6.0, -9.0]))
    assert reversed_.same_grid(relative)
    np.testing.assert_array_equal(reversed_.array, relative.array)


def test_oblique_orientation_and_scaling(tmp_path, rt_case):
    d = oblique_direction(25)
    pixels = np.full((2, 3, 4), 1000, dtype=np.uint32)
    path = write_dose(
        tmp_path, rt_case / "rtdose.dcm", pixels, ImageOrientationPatient=list(d[:, 0]) + list(d[:, 1]),
        ImagePositionPatient=[1.0, 2.0, 3.0], PixelSpacing=[2.0, 1.5], DoseGridScaling=0.002)
    dose = read_rtdose(path)
    np.testing.assert_allclose(dose.direction, d, atol=1e-6)
    assert dose.spacing == pytest.approx((1.5, 2.0, 3.0))  # (column, row, frame) spacing
    np.testing.assert_allclose(dose.array, 2.0)
    np.testing.assert_allclose(dose.ijk_to_lps([0, 0, 1]), np.array([1.0, 2.0, 3.0]) + 3.0 * d[:, 2], atol=1e-6)


def test_centigray_converted_to_gray(tmp_path, rt_case):
    path = write_dose(tmp_path, rt_case / "rtdose.dcm", np.full((2, 2, 2), 250, np.uint32), DoseUnits="CGY",
                      DoseGridScaling=1.0)
    np.testing.assert_allclose(read_rtdose(path).array, 2.5)


@pytest.mark.parametrize("pixels, message", [
    (np.zeros((2, 3, 4), np.uint32), "zero everywhere"),
    (np.array([[[1.0, np.nan], [2.0, 3.0]]], np.float32), "NaN"),
])
def test_bad_dose_values(tmp_path, rt_case, pixels, message):
    path = write_dose(tmp_path, rt_case / "rtdose.dcm", pixels)
    with pytest.raises(InputError, match=message) as info:
        read_rtdose(path)
    assert str(path) in str(info.value)


def test_missing_not_dicom_wrong_modality_and_truncated(tmp_path, rt_case):
    with pytest.raises(InputError, match="not found"):
        read_rtdose(tmp_path / "absent.dcm")
    text = tmp_path / "notes.dcm"
    text.write_text("this is not DICOM\n" * 20)
    with pytest.raises(InputError, match="not a DICOM file"):
        read_rtdose(text)
    with pytest.raises(InputError, match="is a DICOM RTPLAN file, expected RTDOSE") as info:
        read_rtdose(rt_case / "rtplan.dcm")
    assert "rtplan.dcm" in str(info.value)
    truncated = tmp_path / "truncated.dcm"
    data = (rt_case / "rtdose.dcm").read_bytes()
    truncated.write_bytes(data[: len(data) * 9 // 10])  # cut inside the pixel data
    with pytest.raises(InputError, match="pixel data is less than expected"):
        read_rtdose(truncated)
    with pytest.raises(InputError, match="folder"):
        read_rtdose(tmp_path)


def test_read_dataset_accepts_one_of_several_modalities(rt_case):
    ds = read_dataset(rt_case / "rtss.dcm", ("RTDOSE", "RTSTRUCT"))
    assert ds.Modality == "RTSTRUCT"
    with pytest.raises(InputError, match="is a DICOM CT file, expected RTDOSE or RTSTRUCT"):
        read_dataset(rt_case / "ct.0.dcm", ("RTDOSE", "RTSTRUCT"))


def test_bad_frame_offsets(tmp_path, rt_case):
    pixels = np.ones((3, 2, 2), np.uint32)
    uneven = write_dose(tmp_path, rt_case / "rtdose.dcm", pixels, "uneven.dcm", GridFrameOffsetVector=[0.0, 3.0, 7.0])
    with pytest.raises(InputError, match="not evenly spaced"):
        read_rtdose(uneven)
    short = write_dose(tmp_path, rt_case / "rtdose.dcm", pixels, "short.dcm", GridFrameOffsetVector=[0.0, 3.0])
    with pytest.raises(InputError, match="2 values for 3 frames"):
        read_rtdose(short)


def test_pydicom_rtdose_variants_read_alike(tmp_path):
    """pydicom's RTDOSE files (implicit VR, big endian, RLE; 15 frames or one frame without
    NumberOfFrames) are RELATIVE; read as Gy they give one dose, scaled by DoseGridScaling."""
    from dicom_helpers import TEST_FILES

    doses = {}
    for name in ("rtdose.dcm", "rtdose_expb.dcm", "rtdose_rle.dcm", "rtdose_1frame.dcm", "rtdose_expb_1frame.dcm",
                 "rtdose_rle_1frame.dcm"):
        with pytest.raises(InputError, match=f"{name}: DoseUnits 'RELATIVE' cannot be converted to Gy"):
            read_rtdose(TEST_FILES / name)
        ds = pydicom.dcmread(TEST_FILES / name)
        ds.DoseUnits = "GY"
        ds.save_as(tmp_path / name)
        doses[name] = read_rtdose(tmp_path / name)
        raw = pydicom.dcmread(TEST_FILES / name).pixel_array
        np.testing.assert_allclose(doses[name].array, (raw * float(ds.DoseGridScaling)).reshape(doses[name].array.shape),
                                   rtol=1e-6)
        assert doses[name].metadata["dose_summation_type"] == str(ds.DoseSummationType)
    for name, dose in doses.items():
        frames = 1 if "1frame" in name else 15
        np.testing.assert_array_equal(dose.array, doses["rtdose.dcm"].array[:frames])
        assert dose.origin == doses["rtdose.dcm"].origin
        assert dose.spacing[:2] == doses["rtdose.dcm"].spacing[:2]
    assert doses["rtdose.dcm"].spacing[2] == pytest.approx(5.0)
    ds = pydicom.dcmread(TEST_FILES / "badVR.dcm")
    ds.DoseUnits = "GY"
    ds.save_as(tmp_path / "badVR.dcm")
    with pytest.raises(InputError, match="badVR.dcm: NumberOfFrames '1A' is not a whole number"):
        read_rtdose(tmp_path / "badVR.dcm")
