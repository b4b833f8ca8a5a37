"""Third-party readers agree with our exports. dicompyler-core reads our RTSTRUCT of the real
breast case's structures together with the real RTDOSE; a reader of the raw SEG frames
(pydicom only: per-frame positions, segment numbers, bit-unpacked pixels) gets the masks back.

Mean doses of the exported structures (unions of dose voxels): dicompyler-core's default DVH takes
the dose at each voxel centre; ``rtsam dvh`` averages the trilinearly interpolated dose over each
voxel, which per axis weighs the voxel and its two neighbours 1/8, 3/4, 1/8. The two differ by
1/8 of the dose's second difference, up to 3.5% for the 0.5 cc Scar in the beam's penumbra.
dicompyler-core's interpolated DVH (``interpolation_resolution``) averages in-plane only once its
resampled grid is centred (upstream it is offset by up to half a dose pixel, pull request
dicompyler-core#192; Scar then reads +23%); between planes it repeats the nearest contour and
takes the dose at the planes, so the z term (Scar 2.9%) remains.
"""

import json

import numpy as np
import pydicom
import pytest
from scipy.ndimage import correlate1d

from dicom_tools import dciodvfy_errors
from rtsam.cli import main
from rtsam.dvh import compute_dvh, structure_dvh
from rtsam.io import read_rtdose, read_rtstruct
from rtsam.io.dicom_export import write_dicom_seg, write_rtstruct
from rt_case_helpers import case_masks, dose_grid_series
from test_dicom_export import ENGINE, brain, case, edited_label  # noqa: F401 (fixtures)

VOXEL_AVERAGE = [1 / 8, 3 / 4, 1 / 8]  # the mean of a linear interpolant over a voxel, per axis
INTERPOLATION_MM = 0.5  # dicompyler-core's in-plane resolution: 5 x 5 per 2.5 mm dose pixel


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


def voxel_averaged(dose, axes):
    """The dose averaged over each voxel along ``axes`` (numpy axes), taken linear between voxel centres."""
    array = dose.array.astype(float)
    for axis in axes:
        array = correlate1d(array, VOXEL_AVERAGE, axis=axis, mode="nearest")
    return dose.with_array(array)


def dicompyler_dvhs(dvhcalc, rtstruct, rtdose, leave_out=(), **options) -> dict:
    numbers = {s.name: s.number for s in read_rtstruct(rtstruct).structures if s.name not in leave_out}
    return {name: dvhcalc.get_dvh(str(rtstruct), str(rtdose), n, **options) for name, n in numbers.items()}


@pytest.fixture(scope="module")
def rtsam_dvh_rows(rt_case, breast_export):
    _, _, rtstruct = breast_export
    dose, structures = read_rtdose(rt_case / "rtdose.dcm"), read_rtstruct(rtstruct)
    return {s.name: structure_dvh(dose, structures, s.name) for s in structures.structures}


def test_dicompyler_core_reads_our_rtstruct_with_the_real_dose(rt_case, breast_export, rtsam_dvh_rows, capsys):
    _, dvhcalc = dicompyler()
    reference, masks, rtstruct = breast_export
    assert len(masks) >= 8  # BODY, Breast, Heart, Lt Lung, Tumor Bed, Nodes, Scar, ...
    theirs = dicompyler_dvhs(dvhcalc, rtstruct, rt_case / "rtdose.dcm")
    assert sorted(theirs) == sorted(masks)
    assert main(["dvh", str(rt_case / "rtdose.dcm"), str(rtstruct), "--json"]) == 0
    ours = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    dose = read_rtdose(rt_case / "rtdose.dcm")
    averaged = voxel_averaged(dose, axes=(0, 1, 2))
    for name, mask in masks.items():
        assert theirs[name].volume == pytest.approx(ours[name]["volume_cc"], rel=0.01), name
        assert theirs[name].volume == pytest.approx(mask.array.sum() * mask.voxel_volume_ml, rel=1e-3), name
        # the same dose samples: rtsam's DVH of the mask on the dose grid (dicompyler bins by 0.01 Gy)
        assert theirs[name].mean == pytest.approx(compute_dvh(dose, mask).mean_gy, rel=1e-3, abs=0.005), name
        # rtsam dvh's supersampled mean is the voxel average of the interpolated dose, nothing else
        # (BODY, 15 litres, is not supersampled: its voxel-centre mean)
        row = rtsam_dvh_rows[name]
        assert ours[name]["mean_gy"] == pytest.approx(row.mean_gy, abs=1e-4), name
        sampled = averaged if row.metadata["supersampling"] > 1 else dose
        assert row.mean_gy == pytest.approx(compute_dvh(sampled, mask).mean_gy, rel=1e-3), name


def centred_lut(index_extents, extents, new_pixel_spacing, min_pixel_spacing):
    """dicompyler-core's resampled grid positions where skimage's rescale puts its samples:
    pixel c0 - 1/2 + (n + 1/2) / scale (upstream spreads them from c0 to c1, off by up to half a pixel)."""
    luts = []
    for axis in (0, 1):  # columns, rows
        first, last = index_extents[axis], index_extents[axis + 2]
        step = (extents[axis + 2] - extents[axis]) / (last - first)
        scale = min_pixel_spacing[1 - axis] / new_pixel_spacing[1 - axis]
        samples = np.arange(round((last - first) * scale))
        luts.append(extents[axis] + step * (-0.5 + (samples + 0.5) / scale))
    return tuple(luts)


def test_dicompyler_core_interpolated_dvh_differs_by_the_dose_curvature_between_planes(
        rt_case, breast_export, rtsam_dvh_rows, monkeypatch):
    """With its grid centred, dicompyler-core's in-plane interpolation gives the voxel average of the
    dose in-plane at the planes; rtsam dvh adds the average between planes. BODY (15 litres) is left
    out: dicompyler-core takes minutes over it at 0.5 mm."""
    _, dvhcalc = dicompyler()
    _, masks, rtstruct = breast_export
    monkeypatch.setattr(dvhcalc, "get_resampled_lut", centred_lut)
    dose = read_rtdose(rt_case / "rtdose.dcm")
    in_plane = voxel_averaged(dose, axes=(1, 2))
    theirs = dicompyler_dvhs(dvhcalc, rtstruct, rt_case / "rtdose.dcm", leave_out=["BODY"], use_structure_extents=True,
                             interpolation_resolution=(INTERPOLATION_MM, INTERPOLATION_MM))
    z_terms = {}
    for name in theirs:
        assert theirs[name].volume == pytest.approx(rtsam_dvh_rows[name].volume_cc, rel=1e-3), name
        expected = compute_dvh(in_plane, masks[name]).mean_gy
        assert theirs[name].mean == pytest.approx(expected, rel=2e-3, abs=0.002), name
        z_terms[name] = rtsam_dvh_rows[name].mean_gy / expected - 1
        # to rtsam dvh: within 1% but where the z term is larger, and that term explains the rest
        difference = abs(theirs[name].mean / rtsam_dvh_rows[name].mean_gy - 1)
        assert difference < max(0.01, abs(z_terms[name]) + 0.003), name
    assert max(abs(t) for t in z_terms.values()) > 0.02  # Scar: the dose curves along z in the penumbra


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
