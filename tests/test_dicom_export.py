"""DICOM SEG and RTSTRUCT export: the real brain1 MR written as a DICOM series (axial and
oblique), its real lesion label exported and read back voxel for voxel, references, codes,
algorithm, bad input and the ``rtsam export-dicom`` command."""

import json
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest

from conftest import oblique_direction
from rtsam.cli import main
from rtsam.errors import GeometryError, InputError
from rtsam.io import read_image, read_rtstruct, write_image
from rtsam.io.contours import slice_loops
from rtsam.io.dicom_export import Algorithm, ExportSegment, read_reference, write_dicom_seg, write_rtstruct
from rtsam.io.rasterize import fill_polygons
from rtsam.itv.dicom4d import write_dicom_phases
from rtsam.volume import Volume

ENGINE = Algorithm("litemedsam", "lite_medsam.pth@sha256:0123abcd")


def right_handed(volume: Volume) -> Volume:
    """brain1 is stored with direction diag(1, -1, 1) (left-handed, not a DICOM slice stack):
    the same voxels at the same places with the j axis reversed."""
    nj = volume.array.shape[1]
    return Volume(volume.array[:, ::-1, :].copy(), volume.spacing, volume.ijk_to_lps([0, nj - 1, 0]),
                  volume.direction @ np.diag([1.0, -1.0, 1.0]))


@pytest.fixture(scope="module")
def brain(data):
    image = right_handed(read_image(data / "pyradiomics/brain1_image.nrrd"))
    label = right_handed(read_image(data / "pyradiomics/brain1_label.nrrd"))
    assert np.allclose(image.direction, np.eye(3)) and label.same_grid(image)
    return image, (label.array > 0).astype(np.uint8)


@pytest.fixture(scope="module", params=["axial", "oblique"])
def case(request, brain, tmp_path_factory):
    """(reference series, lesion mask on it, its NRRD file, folder) for the real MR written as CT slices."""
    image, label = brain
    if request.param == "oblique":
        image = Volume(image.array, image.spacing, (-40.0, 25.0, -60.0), oblique_direction(25))
    folder = tmp_path_factory.mktemp(request.param)
    write_dicom_phases([image], folder / "series", [0.0])
    reference = read_reference(folder / "series")
    assert reference.volume.same_grid(image, atol=1e-4)
    mask = reference.volume.with_array(label)
    mask_file = write_image(mask, folder / "lesion.nrrd")
    return reference, read_image(mask_file), mask_file, folder


def edited_label(label: np.ndarray) -> np.ndarray:
    """The real lesion with, on its largest slice, a hole holding an island, a second component
    and a voxel touching the lesion only at a corner."""
    mask = label.copy()
    k = int(mask.sum(axis=(1, 2)).argmax())
    rows, cols = np.nonzero(mask[k])
    r, c = int(np.median(rows)), int(np.median(cols))
    mask[k, r - 3:r + 4, c - 3:c + 4] = 0
    mask[k, r, c] = 1
    mask[k, rows.max() + 3:rows.max() + 6, cols.min():cols.min() + 4] = 1
    top = rows.min()
    mask[k, top - 1, cols[rows == top].max() + 1] = 1
    return mask


def test_loops_follow_voxel_edges_with_corners_only():
    square = np.zeros((6, 7), bool)
    square[1:5, 2:6] = True
    (loop,) = slice_loops(square)
    assert sorted(map(tuple, loop)) == [(1.5, 0.5), (1.5, 4.5), (5.5, 0.5), (5.5, 4.5)]
    diagonal = np.zeros((4, 4), bool)
    diagonal[1, 1] = diagonal[2, 2] = True
    assert [len(p) for p in slice_loops(diagonal)] == [4, 4]
    ring = square.copy()
    ring[2:4, 3:5] = False
    assert len(slice_loops(ring)) == 2
    rng = np.random.default_rng(7)
    for _ in range(50):
        mask = rng.random((9, 11)) < 0.45
        assert np.array_equal(fill_polygons(slice_loops(mask), 9, 11), mask)


def test_rtstruct_round_trip_is_exact(case, tmp_path):
    reference, mask, _, _ = case
    edited = mask.with_array(edited_label(mask.array))
    segments = {"Cerebral radiation necrosis": mask, "Edited lesion": edited}
    path = write_rtstruct(segments, reference, tmp_path / "rtss.dcm", ENGINE)
    structures = read_rtstruct(path)
    assert structures.names == ["Cerebral radiation necrosis", "Edited lesion"]
    assert structures.frame_of_reference_uid == reference.frame_of_reference_uid
    for name, expected in segments.items():
        assert np.array_equal(structures.mask(name, reference.volume).array, expected.array), name
    k = int(mask.array.sum(axis=(1, 2)).argmax())
    on_slice = [c for c in structures.structure("Edited lesion").contours
                if np.allclose(reference.volume.lps_to_ijk(c)[:, 2], k, atol=1e-6)]
    assert len(on_slice) >= 5  # outline, hole, island, second component, corner voxel
    for contour in structures.structure("Cerebral radiation necrosis").contours:  # collinear points merged
        steps = np.diff(np.vstack([contour, contour[:1]]), axis=0)
        assert not np.any(np.all(np.isclose(np.cross(steps, np.roll(steps, -1, axis=0)), 0, atol=1e-6), axis=1))


def test_rtstruct_references_series_patient_and_algorithm(case, tmp_path):
    reference, mask, _, _ = case
    path = write_rtstruct({"Cerebral radiation necrosis": mask, "Tumour": mask}, reference, tmp_path / "rtss.dcm",
                          ENGINE)
    ds = pydicom.dcmread(path)
    first = reference.datasets[0]
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.481.3" and ds.Modality == "RTSTRUCT"
    assert (ds.PatientID, ds.StudyInstanceUID) == (first.PatientID, first.StudyInstanceUID)
    slice_uids = [d.SOPInstanceUID for d in reference.datasets]
    frame = ds.ReferencedFrameOfReferenceSequence[0]
    assert frame.FrameOfReferenceUID == first.FrameOfReferenceUID
    series = frame.RTReferencedStudySequence[0].RTReferencedSeriesSequence[0]
    assert series.SeriesInstanceUID == first.SeriesInstanceUID
    assert [i.ReferencedSOPInstanceUID for i in series.ContourImageSequence] == slice_uids
    for roi in ds.ROIContourSequence:
        for contour in roi.ContourSequence:  # each contour lies on the slice it references
            k = slice_uids.index(contour.ContourImageSequence[0].ReferencedSOPInstanceUID)
            points = np.asarray(contour.ContourData, float).reshape(-1, 3)
            assert np.allclose(reference.volume.lps_to_ijk(points)[:, 2], k, atol=1e-6)
            assert contour.ContourGeometricType == "CLOSED_PLANAR" and contour.NumberOfContourPoints == len(points)
    roi = ds.StructureSetROISequence[0]
    assert roi.ROIGenerationAlgorithm == "SEMIAUTOMATIC" and "litemedsam" in roi.ROIGenerationDescription
    assert roi.ReferencedFrameOfReferenceUID == first.FrameOfReferenceUID
    assert [list(r.ROIDisplayColor) for r in ds.ROIContourSequence][0] == [217, 38, 38]  # the preset's colour
    assert [o.ReferencedROINumber for o in ds.RTROIObservationsSequence] == [1, 2]


def test_dicom_seg_round_trip_is_exact(case, tmp_path):
    reference, mask, _, _ = case
    edited = edited_label(mask.array)
    segments = [ExportSegment("Cerebral radiation necrosis", mask),
                ExportSegment("Edited lesion", mask.with_array(edited), color=(0.0, 1.0, 0.0))]
    path = write_dicom_seg(segments, reference, tmp_path / "seg.dcm", ENGINE)
    assert pydicom.dcmread(path).Modality == "SEG"
    seg = hd.seg.segread(path)
    assert seg.FrameOfReferenceUID == reference.frame_of_reference_uid
    assert seg.PatientID == reference.datasets[0].PatientID
    slice_uids = [d.SOPInstanceUID for d in reference.datasets]
    pixels = seg.get_pixels_by_source_instance(slice_uids, segment_numbers=[1, 2])
    assert np.array_equal(pixels[..., 0], mask.array) and np.array_equal(pixels[..., 1], edited)
    # frames only where a segment has voxels, each placed on its slice
    filled = int(mask.array.any(axis=(1, 2)).sum() + edited.any(axis=(1, 2)).sum())
    assert seg.number_of_frames == filled
    assert {uid for _, _, uid in seg.get_source_image_uids()} == set(slice_uids)
    assert_volume_matches(seg.get_volume(segment_numbers=[1]), mask)


def assert_volume_matches(volume, mask: Volume) -> None:
    """The SEG's own volume (highdicom's axes and affine) holds the mask voxels at the same LPS points."""
    array = np.squeeze(volume.array, axis=-1) if volume.array.ndim == 4 else volume.array
    indices = np.argwhere(array > 0)
    lps = (volume.affine @ np.column_stack([indices, np.ones(len(indices))]).T).T[:, :3]
    ijk = mask.lps_to_ijk(lps)
    assert np.allclose(ijk, np.round(ijk), atol=1e-3)
    found = np.zeros(mask.array.shape, np.uint8)
    i, j, k = np.round(ijk).astype(int).T
    found[k, j, i] = 1
    assert np.array_equal(found, mask.array)


def test_dicom_seg_segments_codes_and_algorithm(case, tmp_path):
    reference, mask, _, _ = case
    segments = {"Cerebral radiation necrosis": mask, "Tumour": mask}
    seg = hd.seg.segread(write_dicom_seg(segments, reference, tmp_path / "seg.dcm", ENGINE))
    preset, generic = seg.SegmentSequence
    assert (preset.SegmentLabel, generic.SegmentLabel) == ("Cerebral radiation necrosis", "Tumour")
    assert preset.SegmentedPropertyTypeCodeSequence[0].CodeValue == "6574001"  # Necrosis (preset)
    assert preset.AnatomicRegionSequence[0].CodeMeaning == "Brain"
    assert generic.SegmentedPropertyTypeCodeSequence[0].CodeValue == "52988006"  # Lesion
    assert generic.SegmentedPropertyCategoryCodeSequence[0].CodeValue == "49755003"
    for item in (preset, generic):
        assert item.SegmentAlgorithmType == "SEMIAUTOMATIC"
        algorithm = item.SegmentationAlgorithmIdentificationSequence[0]
        assert (algorithm.AlgorithmName, algorithm.AlgorithmVersion) == (ENGINE.name, ENGINE.version)
    manual = hd.seg.segread(write_dicom_seg({"Tumour": mask}, reference, tmp_path / "manual.dcm"))
    assert manual.SegmentSequence[0].SegmentAlgorithmType == "MANUAL"
    assert "SegmentationAlgorithmIdentificationSequence" not in manual.SegmentSequence[0]


@pytest.mark.parametrize("writer", [write_dicom_seg, write_rtstruct])
def test_masks_off_the_grid_or_empty_name_their_file(case, tmp_path, writer):
    reference, mask, _, _ = case
    shifted = Volume(mask.array, mask.spacing, np.add(mask.origin, [1.0, 0, 0]), mask.direction)
    cropped = Volume(mask.array[1:], mask.spacing, mask.ijk_to_lps([0, 0, 1]), mask.direction)
    empty = mask.with_array(np.zeros_like(mask.array))
    for volume, message in ((shifted, "origin"), (cropped, "size"), (empty, "is empty")):
        path = write_image(volume, tmp_path / "bad.nrrd")
        with pytest.raises(InputError, match=message) as info:
            writer({"Lesion": read_image(path)}, reference, tmp_path / "out.dcm")
        assert str(path) in str(info.value)
    other_frame = Volume(mask.array, mask.spacing, mask.origin, mask.direction, frame_of_reference_uid="1.2.3.4")
    with pytest.raises(GeometryError, match="frame of reference 1.2.3.4"):
        writer({"Lesion": other_frame}, reference, tmp_path / "out.dcm")
    with pytest.raises(InputError, match="unique"):
        writer([("A", mask), ("A", mask)], reference, tmp_path / "out.dcm")
    with pytest.raises(InputError, match="output folder does not exist"):
        writer({"Lesion": mask}, reference, tmp_path / "missing" / "out.dcm")
    assert not (tmp_path / "out.dcm").exists()


def test_bad_reference_names_the_path(case, tmp_path):
    reference, _, mask_file, folder = case
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no images here")
    with pytest.raises(InputError, match="no DICOM image series") as info:
        read_reference(empty)
    assert str(empty) in str(info.value)
    with pytest.raises(InputError, match="must be a DICOM image series"):
        read_reference(mask_file)
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    files = [Path(f) for f in reference.volume.metadata["files"]]
    for f in files:
        (damaged / f.name).write_bytes(f.read_bytes())
    middle = damaged / files[len(files) // 2].name
    middle.write_bytes(middle.read_bytes()[:1000])
    with pytest.raises(InputError, match="truncated or corrupt") as info:
        read_reference(damaged)
    assert str(middle) in str(info.value)


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_writes_both_formats(case, tmp_path, capsys):
    reference, mask, mask_file, folder = case
    code, out, err = run(capsys, "export-dicom", mask_file, "--reference", folder / "series", "--out",
                         tmp_path / "rtss.dcm", "--format", "rtstruct", "--name", "Cerebral edema",
                         "--engine", "litemedsam", "--engine-version", "v1", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["segments"][0]["name"] == "Cerebral edema"
    assert report["segments"][0]["voxels"] == int(mask.array.sum())
    assert np.array_equal(read_rtstruct(tmp_path / "rtss.dcm").mask("Cerebral edema", reference.volume).array,
                          mask.array)
    code, out, err = run(capsys, "export-dicom", mask_file, "--reference", folder / "series", "--out",
                         tmp_path / "seg.dcm", "--format", "seg")
    assert code == 0 and "seg" in out, err
    seg = hd.seg.segread(tmp_path / "seg.dcm")
    assert seg.SegmentSequence[0].SegmentLabel == "lesion" and seg.SegmentSequence[0].SegmentAlgorithmType == "MANUAL"


def test_cli_bad_input_exits_2_naming_the_file(case, tmp_path, capsys):
    reference, mask, mask_file, folder = case
    corrupt = tmp_path / "corrupt.nrrd"
    corrupt.write_bytes(mask_file.read_bytes()[:200])
    shifted = write_image(Volume(mask.array, mask.spacing, np.add(mask.origin, [0, 0, 3.0]), mask.direction),
                          tmp_path / "shifted.nrrd")
    common = ["--reference", folder / "series", "--out", tmp_path / "out.dcm", "--format", "seg"]
    for argv, fragment in (([corrupt, *common], str(corrupt)),
                           ([shifted, *common], f"{shifted}: mask 'shifted' is not on the grid"),
                           ([mask_file, mask_file, "--name", "A", *common], "2 masks"),
                           ([mask_file, "--reference", tmp_path, "--out", tmp_path / "o.dcm", "--format", "rtstruct"],
                            f"{tmp_path}: no DICOM image series")):
        code, out, err = run(capsys, "export-dicom", *argv)
        assert code == 2 and out == "" and "Traceback" not in err
        assert fragment in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out.dcm").exists()
