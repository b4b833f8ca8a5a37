"""Image files and DICOM series: reading, choosing a series, sorting, atomic writing, bad input."""

import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid

from conftest import oblique_direction
from rtsam.errors import InputError
from rtsam.io import read_image, write_image
from rtsam.volume import Volume


def write_series(folder, template, direction, origin, spacing=(0.8, 0.7, 2.5), shape=(5, 6, 7), description="CT A",
                 rng=None, frame_uid=None):
    """A CT series from the real slice's header, one file per slice, names in shuffled order.

    Slice k holds the value 100 * k + row (so order and orientation can be checked).
    """
    nk, nj, ni = shape
    template = pydicom.dcmread(template)
    series_uid = generate_uid()
    names = (rng.permutation(nk) if rng is not None else np.arange(nk))
    for k in range(nk):
        ds = template.copy()
        ds.SeriesInstanceUID, ds.SOPInstanceUID = series_uid, generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.SeriesDescription = description
        ds.Rows, ds.Columns = nj, ni
        ds.PixelSpacing = [spacing[1], spacing[0]]
        ds.ImageOrientationPatient = [float(v) for v in list(direction[:, 0]) + list(direction[:, 1])]
        ds.ImagePositionPatient = [float(v) for v in np.asarray(origin) + k * spacing[2] * direction[:, 2]]
        ds.InstanceNumber = int(names[k]) + 1
        if frame_uid:
            ds.FrameOfReferenceUID = frame_uid
        pixels = (100 * k + np.arange(nj)[:, None] + np.zeros((1, ni))).astype(np.int16)
        ds.PixelData = pixels.tobytes()
        ds.save_as(folder / f"slice_{names[k]:03d}.dcm")
    return series_uid


@pytest.fixture
def ct_template(rt_case):
    return rt_case / "ct.0.dcm"


def test_oblique_series_sorted_by_position(tmp_path, ct_template, rng):
    direction = oblique_direction(20)
    origin = (-120.5, 33.0, -250.0)
    uid = write_series(tmp_path, ct_template, direction, origin, rng=rng, frame_uid="1.2.826.0.1.99")
    volume = read_image(tmp_path)
    assert volume.array.shape == (5, 6, 7)
    assert volume.spacing == pytest.approx((0.8, 0.7, 2.5), abs=1e-5)
    np.testing.assert_allclose(volume.origin, origin, atol=1e-4)
    np.testing.assert_allclose(volume.direction, direction, atol=1e-5)
    np.testing.assert_array_equal(volume.array[:, :, 0], 100 * np.arange(5)[:, None] + np.arange(6)[None, :])
    assert volume.frame_of_reference_uid == "1.2.826.0.1.99"
    assert volume.metadata["modality"] == "CT" and volume.metadata["series_uid"] == uid
    assert volume.metadata["path"] == str(tmp_path)


def test_two_series_need_a_uid(tmp_path, ct_template, rng):
    first = write_series(tmp_path, ct_template, np.eye(3), (0, 0, 0), description="CT A", rng=rng)
    (tmp_path / "b").mkdir()
    second = write_series(tmp_path / "b", ct_template, np.eye(3), (0, 0, 100), shape=(3, 4, 4), description="CT B")
    for f in (tmp_path / "b").iterdir():
        f.rename(tmp_path / f"b_{f.name}")
    with pytest.raises(InputError, match="2 image series found") as info:
        read_image(tmp_path)
    message = str(info.value)
    assert first in message and second in message and "CT B" in message and "3 slices" in message
    chosen = read_image(tmp_path, series_uid=second)
    assert chosen.array.shape == (3, 4, 4) and chosen.origin[2] == pytest.approx(100)
    # a slice file of the folder selects its own series
    assert read_image(next(tmp_path.glob("b_*.dcm"))).metadata["series_uid"] == second
    with pytest.raises(InputError, match="series 1.2.3 not found; available"):
        read_image(tmp_path, series_uid="1.2.3")


def test_rt_objects_are_not_image_series(tmp_path, rt_case):
    for name in ("rtdose.dcm", "rtss.dcm", "rtplan.dcm"):
        (tmp_path / name).write_bytes((rt_case / name).read_bytes())
    with pytest.raises(InputError, match="no DICOM image series"):
        read_image(tmp_path)
    with pytest.raises(InputError, match="rtdose.dcm: is a DICOM RTDOSE file, not an image"):
        read_image(tmp_path / "rtdose.dcm")


@pytest.mark.parametrize("damage", ["delete", "truncate"])
def test_missing_or_truncated_slice_is_an_error(tmp_path, ct_template, damage):
    write_series(tmp_path, ct_template, np.eye(3), (0, 0, 0))
    slice_file = tmp_path / "slice_002.dcm"
    if damage == "delete":
        slice_file.unlink()
    else:  # GDCM leaves the unreadable slice out of the series; the error names it
        slice_file.write_bytes(slice_file.read_bytes()[:-30])
    expected = "not evenly spaced .* missing slices" if damage == "delete" else "slice_002.dcm: cannot read this slice"
    with pytest.raises(InputError, match=expected):
        read_image(tmp_path)


@pytest.mark.parametrize("suffix", [".nrrd", ".nii.gz", ".nii", ".mha"])
def test_write_read_round_trip(tmp_path, rng, suffix):
    volume = Volume(rng.normal(size=(4, 5, 6)).astype(np.float32), spacing=(0.7, 1.3, 3.1),
                    origin=(-101.25, -7.5, -300.125), direction=oblique_direction(35))
    back = read_image(write_image(volume, tmp_path / f"image{suffix}"))
    np.testing.assert_array_equal(back.array, volume.array)
    atol = 1e-4 if suffix.startswith(".nii") else 1e-12  # NIfTI stores geometry in float32
    np.testing.assert_allclose(back.spacing, volume.spacing, atol=atol)
    np.testing.assert_allclose(back.origin, volume.origin, atol=atol)
    np.testing.assert_allclose(back.direction, volume.direction, atol=atol)
    assert back.metadata["path"] == str(tmp_path / f"image{suffix}")


def test_bool_mask_written_as_uint8_and_left_handed_direction(tmp_path):
    direction = oblique_direction(10) @ np.diag([1.0, 1.0, -1.0])
    mask = Volume(np.zeros((3, 4, 5), bool), spacing=(1, 2, 3), origin=(-5, -6, -7), direction=direction)
    mask.array[1, 2, 3] = True
    for name in ("mask.nrrd", "mask.nii.gz"):
        back = read_image(write_image(mask, tmp_path / name))
        assert back.array.dtype == np.uint8 and back.array.sum() == 1 and back.array[1, 2, 3] == 1
        np.testing.assert_allclose(back.direction, direction, atol=1e-5)


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    import SimpleITK as sitk

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(sitk, "WriteImage", broken)
    with pytest.raises(InputError, match="cannot write image"):
        write_image(Volume(np.ones((2, 2, 2))), tmp_path / "out.nrrd")
    assert list(tmp_path.iterdir()) == []


def test_bad_paths(tmp_path):
    with pytest.raises(InputError, match="not found"):
        read_image(tmp_path / "missing.nrrd")
    bad = tmp_path / "broken.nrrd"
    bad.write_text("NRRD0004\ngarbage\n")
    with pytest.raises(InputError, match="cannot read image") as info:
        read_image(bad)
    assert str(bad) in str(info.value)
    with pytest.raises(InputError, match="unsupported image format .txt"):
        (tmp_path / "a.txt").write_text("x")
        read_image(tmp_path / "a.txt")
    with pytest.raises(InputError, match="cannot write .png"):
        write_image(Volume(np.ones((2, 2, 2))), tmp_path / "a.png")
    with pytest.raises(InputError, match="output folder does not exist"):
        write_image(Volume(np.ones((2, 2, 2))), tmp_path / "no" / "a.nrrd")
