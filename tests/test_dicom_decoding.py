"""Transfer syntaxes clinics send, read through the series reader and checked voxel for voxel against
pydicom's own decoding; geometry against SimpleITK's own GDCM series reading; the pydicom fallback;
enhanced multi-frame CT."""

import io

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.encaps import encapsulate
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLSLossless,
    JPEGLosslessSV1,
    RLELossless,
)

from conftest import oblique_direction
from dicom_helpers import TEST_FILES, ct_volume, pydicom_reference, write_ct_series
from rtsam.errors import InputError
from rtsam.io import read_image
from rtsam.io import stack as stack_module

# Lossy JPEG: GDCM's and libjpeg's inverse DCTs may round a grey level differently.
LOSSY = {"jpeg-baseline": 1, "jpeg-extended-12bit": 1, "j2k-irreversible": 0}


def _pydicom_compress(ts):
    def encode(ds, path):
        ds.compress(ts)
    return encode


def _rewrite(ts):
    def encode(ds, path):
        ds.file_meta.TransferSyntaxUID = ts
    return encode


def _big_endian(ds, path):
    ds.PixelData = ds.pixel_array.astype(">i2").tobytes()
    ds.file_meta.TransferSyntaxUID = ExplicitVRBigEndian


def _gdcm_jpeg_lossless(ds, path):
    writer = sitk.ImageFileWriter()
    writer.SetFileName(str(path.with_suffix(".gdcm")))
    writer.SetImageIO("GDCMImageIO")
    writer.SetUseCompression(True)
    writer.SetCompressor("JPEG")  # GDCM's JPEG is lossless process 14
    writer.Execute(sitk.ReadImage(str(path)))
    compressed = pydicom.dcmread(path.with_suffix(".gdcm"))
    path.with_suffix(".gdcm").unlink()
    assert compressed.file_meta.TransferSyntaxUID == JPEGLosslessSV1
    ds.file_meta.TransferSyntaxUID = JPEGLosslessSV1
    ds.PixelData = compressed.PixelData


def _jpeg_baseline(ds, path):
    from PIL import Image

    pixels = (ds.pixel_array.astype(np.int32) % 251).astype(np.uint8)  # 8-bit grey, still distinct per slice
    stream = io.BytesIO()
    Image.fromarray(pixels).save(stream, format="JPEG", quality=95)
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.PixelData = encapsulate([stream.getvalue()])


def _graft(source_name):
    """The compressed frame of one of pydicom's files at this slice's position (its pixel module)."""
    def encode(ds, path):
        source = pydicom.dcmread(TEST_FILES / source_name)
        for keyword in ("Rows", "Columns", "BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation",
                        "PhotometricInterpretation", "PixelData"):
            setattr(ds, keyword, source[keyword].value)
        ds.file_meta.TransferSyntaxUID = source.file_meta.TransferSyntaxUID
    return encode


ENCODINGS = {
    "explicit-le": _rewrite(pydicom.uid.ExplicitVRLittleEndian),
    "implicit-le": _rewrite(ImplicitVRLittleEndian),
    "explicit-be": _big_endian,
    "deflate": _rewrite(DeflatedExplicitVRLittleEndian),
    "rle": _pydicom_compress(RLELossless),
    "jpeg-ls-lossless": _pydicom_compress(JPEGLSLossless),
    "j2k-lossless": _pydicom_compress(JPEG2000Lossless),
    "jpeg-lossless": _gdcm_jpeg_lossless,
    "jpeg-baseline": _jpeg_baseline,
    "jpeg-extended-12bit": _graft("JPGExtended.dcm"),
    "j2k-irreversible": _graft("693_J2KI.dcm"),
}


def encoded_series(folder, encoding, direction=None):
    files = write_ct_series(folder, ct_volume(direction))
    for path in files:
        ds = pydicom.dcmread(path)
        ENCODINGS[encoding](ds, path)
        if ds.file_meta.TransferSyntaxUID == ExplicitVRBigEndian:  # pydicom writes it only when forced
            pydicom.dcmwrite(path, ds, little_endian=False, implicit_vr=False, force_encoding=True)
        else:
            ds.save_as(path, enforce_file_format=True)
    return files


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_transfer_syntax_voxels_match_pydicom(encoding, tmp_path):
    direction = oblique_direction(25)
    files = encoded_series(tmp_path, encoding, direction)
    volume = read_image(tmp_path)
    reference = pydicom_reference(files)
    assert volume.array.shape == reference.shape
    difference = np.abs(volume.array.astype(np.float64) - reference)
    assert difference.max() <= LOSSY.get(encoding, 0), f"{encoding}: {int(np.sum(difference > 0))} voxels differ"
    if encoding not in LOSSY:  # and it is the CT written
        np.testing.assert_array_equal(volume.array, ct_volume().array)
    expected = ct_volume(direction)
    np.testing.assert_allclose(volume.direction, expected.direction, atol=1e-6)
    np.testing.assert_allclose(volume.origin, expected.origin, atol=1e-4)
    np.testing.assert_allclose(volume.spacing[2], expected.spacing[2], atol=1e-5)


def shuffled_oblique_series(folder, degrees=35):
    """An oblique series whose file names do not follow slice order."""
    files = write_ct_series(folder, ct_volume(oblique_direction(degrees), shape=(5, 8, 9)))
    for n, path in zip((3, 0, 4, 1, 2), files):
        path.rename(folder / f"x{n}.dcm")
    return sorted(folder.glob("x*.dcm"))


def test_geometry_matches_simpleitk_own_series_reading(tmp_path):
    shuffled_oblique_series(tmp_path)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(tmp_path)))  # the former path
    gdcm = reader.Execute()
    volume = read_image(tmp_path)
    np.testing.assert_array_equal(volume.array, sitk.GetArrayFromImage(gdcm))
    np.testing.assert_allclose(volume.origin, gdcm.GetOrigin(), atol=1e-6)
    np.testing.assert_allclose(volume.spacing, gdcm.GetSpacing(), atol=1e-6)
    np.testing.assert_allclose(volume.direction.ravel(), gdcm.GetDirection(), atol=1e-9)
    expected = ct_volume(oblique_direction(35), shape=(5, 8, 9))
    np.testing.assert_array_equal(volume.array, expected.array)
    np.testing.assert_allclose(volume.direction, expected.direction, atol=1e-6)


@pytest.mark.parametrize("encoding", ["explicit-le", "rle", "j2k-lossless", "jpeg-lossless"])
def test_pydicom_fallback_reads_what_gdcm_reads(encoding, tmp_path, monkeypatch):
    files = encoded_series(tmp_path, encoding, oblique_direction(15))
    by_gdcm = read_image(tmp_path)
    monkeypatch.setattr(stack_module, "_read_sitk", lambda files: None)  # as if GDCM could not read them
    by_pydicom = read_image(tmp_path)
    np.testing.assert_array_equal(by_pydicom.array, by_gdcm.array)
    assert by_pydicom.array.dtype == by_gdcm.array.dtype
    np.testing.assert_allclose(by_pydicom.origin, by_gdcm.origin, atol=1e-6)
    np.testing.assert_allclose(by_pydicom.spacing, by_gdcm.spacing, atol=1e-6)
    np.testing.assert_allclose(by_pydicom.direction, by_gdcm.direction, atol=1e-9)
    assert by_pydicom.metadata["files"] == by_gdcm.metadata["files"] == [str(f) for f in files]


def test_slices_with_their_own_rescale(tmp_path):
    files = write_ct_series(tmp_path, ct_volume())
    ds = pydicom.dcmread(files[1])
    ds.RescaleSlope, ds.RescaleIntercept = 0.5, -10
    ds.save_as(files[1])
    volume = read_image(tmp_path)
    assert volume.array.dtype == np.float32
    np.testing.assert_array_equal(volume.array, pydicom_reference(files))
    np.testing.assert_array_equal(volume.array[1], ct_volume().array[1] * 0.5 - 10)


def test_a_series_mixing_stacks_is_split(tmp_path):
    files = write_ct_series(tmp_path, ct_volume(shape=(3, 8, 8)))
    uid = str(pydicom.dcmread(files[0]).SeriesInstanceUID)
    scout = pydicom.dcmread(files[0])  # a localizer in the same series: another orientation and size
    scout.SOPInstanceUID = scout.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    scout.ImageOrientationPatient = [1, 0, 0, 0, 0, -1]
    scout.Rows, scout.Columns, scout.PixelData = 4, 8, bytes(64)
    scout.save_as(tmp_path / "scout.dcm")
    noisy = pydicom.dcmread(files[1])  # orientation noise below 1e-3 keeps a slice in its stack
    noisy.ImageOrientationPatient = [1, 0, 0, 0, 1, 0.0006]
    noisy.save_as(files[1])
    with pytest.raises(InputError, match=f"2 image series found.*{uid}#1 .*3 slices.*{uid}#2 .*1 slices"):
        read_image(tmp_path)
    assert read_image(files[0]).array.shape == (3, 8, 8)
    assert read_image(tmp_path, series_uid=f"{uid}#1").array.shape == (3, 8, 8)
    assert read_image(tmp_path / "scout.dcm").array.shape == (1, 4, 8)


def test_copies_are_left_out_and_duplicates_named(tmp_path, caplog):
    files = write_ct_series(tmp_path, ct_volume(shape=(3, 8, 8)))
    (tmp_path / "z_copy.dcm").write_bytes(files[1].read_bytes())
    volume = read_image(tmp_path)
    assert volume.array.shape == (3, 8, 8)
    assert [r.getMessage() for r in caplog.records] == [
        f"{tmp_path / 'z_copy.dcm'}: left out: same SOPInstanceUID as {files[1].name} (a copy)"]
    assert read_image(tmp_path / "z_copy.dcm").metadata["files"][1] == str(tmp_path / "z_copy.dcm")  # the given copy
    ds = pydicom.dcmread(files[1])
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    ds.save_as(tmp_path / "z_copy.dcm")
    with pytest.raises(InputError, match=f"{files[1].name} and z_copy.dcm lie at one position"):
        read_image(tmp_path)


def enhanced_ct(folder, files, shared_position=False):
    from highdicom.legacy import LegacyConvertedEnhancedCTImage

    datasets = [pydicom.dcmread(f) for f in files]
    for ds in datasets:
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    if shared_position:  # two time points of one slice
        datasets[1].ImagePositionPatient = datasets[0].ImagePositionPatient
    image = LegacyConvertedEnhancedCTImage(datasets, series_instance_uid=pydicom.uid.generate_uid(), series_number=9,
                                           sop_instance_uid=pydicom.uid.generate_uid(), instance_number=1)
    image.save_as(folder / "enhanced.dcm")
    return folder / "enhanced.dcm"


def test_enhanced_multiframe_ct_reads_like_its_slices(tmp_path):
    (tmp_path / "slices").mkdir()
    files = shuffled_oblique_series(tmp_path / "slices", degrees=25)
    enhanced = enhanced_ct(tmp_path, files[::-1])
    volume, slices = read_image(enhanced), read_image(tmp_path / "slices")
    np.testing.assert_array_equal(volume.array, slices.array)
    np.testing.assert_allclose(volume.origin, slices.origin, atol=1e-4)
    np.testing.assert_allclose(volume.spacing, slices.spacing, atol=1e-5)
    np.testing.assert_allclose(volume.direction, slices.direction, atol=1e-6)
    assert volume.metadata["modality"] == "CT"
    for f in files:  # beside its slices: two series, the enhanced one counted in frames
        (tmp_path / f.name).write_bytes(f.read_bytes())
    with pytest.raises(InputError, match="2 image series found") as info:
        read_image(tmp_path)
    assert "5 frames)" in str(info.value) and "5 slices)" in str(info.value)


def test_enhanced_multiframe_with_two_frames_at_one_position_is_refused(tmp_path):
    files = write_ct_series(tmp_path, ct_volume(shape=(3, 8, 8)))
    enhanced = enhanced_ct(tmp_path, files, shared_position=True)
    with pytest.raises(InputError, match=r"enhanced.dcm: frame \d and frame \d lie at one position.*several stacks"):
        read_image(enhanced)
