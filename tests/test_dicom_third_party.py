"""Third-party readers agree with our exports. dicompyler-core reads our RTSTRUCT of the real
breast case's structures together with the real RTDOSE; a reader of the raw SEG frames
(pydicom only: per-frame positions, segment numbers, bit-unpacked pixels) gets the masks back."""

import json

import numpy as np
import pydicom
import pytest

from dicom_tools import dciodvfy_errors
from rtsam.cli import main
from rtsam.dvh import compute_dvh
from rtsam.io import read_rtdose
from rtsam.io.dicom_export import write_dicom_seg, write_rtstruct
from rt_case_helpers import case_masks, dose_grid_series
from test_dicom_export import ENGINE, brain, case, edited_label  # noqa: F401 (fixtures)

LARGE_CC = 10.0  # structures whose supersampled mean dose (rtsam dvh) and voxel-centre mean agree within 1%


def dicompyler():
    """dicompyler-core 0.5.6 calls pydicom's pre-3.0 name read_file (now dcmread)."""
    dicomio = pytest.importorskip("pydicom.dicomio")
    if not hasattr(dicomio, "read_file"):
        dicomio.read_file = pydicom.dcmread
    from dicompylercore import dicomparser, dvhcalc

    return dicomparser, dvhcalc


@pytest.fixture(scope="module")
def breast_export(rt_case, tmp_path_factory):
    folder = tmp_path_factory.mktemp("breast")
    reference = dose_grid_series(rt_case, folder / "ct")
    masks = case_masks(rt_case, reference)
    return reference, masks, write_rtstruct(masks, reference, folder / "rtss.dcm", ENGINE)


def test_dicompyler_core_reads_our_rtstruct_with_the_real_dose(rt_case, breast_export, capsys):
    dicomparser, dvhcalc = dicompyler()
    reference, masks, rtstruct = breast_export
    assert len(masks) >= 8  # BODY, Breast, Heart, Lt Lung, Tumor Bed, Nodes, Scar, ...
    theirs = {}
    for number, structure in dicomparser.DicomParser(str(rtstruct)).GetStructures().items():
        dvh = dvhcalc.get_dvh(str(rtstruct), str(rt_case / "rtdose.dcm"), number)
        theirs[structure["name"]] = dvh.volume, dvh.mean
    assert sorted(theirs) == sorted(masks)
    assert main(["dvh", str(rt_case / "rtdose.dcm"), str(rtstruct), "--json"]) == 0
    ours = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    dose = read_rtdose(rt_case / "rtdose.dcm")
    for name, mask in masks.items():
        volume, mean = theirs[name]
        assert volume == pytest.approx(ours[name]["volume_cc"], rel=0.01), name
        assert volume == pytest.approx(mask.array.sum() * mask.voxel_volume_ml, rel=1e-3), name
        # the same dose samples: rtsam's DVH of the mask on the dose grid (dicompyler bins by 0.01 Gy)
        assert mean == pytest.approx(compute_dvh(dose, mask).mean_gy, rel=1e-3, abs=0.005), name
        if volume >= LARGE_CC:
            assert mean == pytest.approx(ours[name]["mean_gy"], rel=0.01), name



def test_rtstruct_in_the_real_study_has_no_dciodvfy_errors(breast_export):
    reference, _, rtstruct = breast_export
    assert dciodvfy_errors(rtstruct) == [] and dciodvfy_errors(reference.volume.metadata["files"][0]) == []


def raw_seg_masks(path, reference) -> dict[int, np.ndarray]:
    """Masks per segment number from the SEG's frames alone, each placed by its ImagePositionPatient."""
    ds = pydicom.dcmread(path)
    assert ds.SegmentationType == "BINARY" and ds.BitsAllocated == 1
    frames = ds.pixel_array.reshape(int(ds.NumberOfFrames), ds.Rows, ds.Columns)
    orientation = np.asarray(ds.SharedFunctionalGroupsSequence[0].PlaneOrientationSequence[0].ImageOrientationPatient,
                             float)
    assert np.allclose(orientation, np.concatenate([reference.volume.direction[:, 0], reference.volume.direction[:, 1]]),
                       atol=1e-6)
    uids = [d.SOPInstanceUID for d in reference.datasets]
    masks = {int(s.SegmentNumber): np.zeros(reference.volume.array.shape, np.uint8) for s in ds.SegmentSequence}
    for frame, group in zip(frames, ds.PerFrameFunctionalGroupsSequence):
        number = int(group.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        position = np.asarray(group.PlanePositionSequence[0].ImagePositionPatient, float)
        i, j, k = reference.volume.lps_to_ijk(position)
        assert np.allclose([i, j], 0, atol=1e-3) and abs(k - round(k)) < 1e-3
        source = group.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        assert source == uids[int(round(k))]
        masks[number][int(round(k))] |= frame.astype(np.uint8)
    return masks


def test_seg_raw_frames_give_the_masks_back(case, tmp_path):
    reference, mask, _, _ = case
    segments = {"Cerebral radiation necrosis": mask, "Edited lesion": mask.with_array(edited_label(mask.array)),
                "Rim": mask.with_array(mask.array & ~np.roll(mask.array, 1, axis=2))}
    path = write_dicom_seg(segments, reference, tmp_path / "seg.dcm", ENGINE)
    masks = raw_seg_masks(path, reference)
    assert sorted(masks) == [1, 2, 3]
    for number, expected in enumerate(segments.values(), start=1):
        assert np.array_equal(masks[number], expected.array), number
