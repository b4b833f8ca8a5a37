"""ITV output in DICOM: ``rtsam itv --out-dicom`` writes the ITV and every phase's mask as one
RTSTRUCT (or SEG) on the reference phase of a 4DCT (the real lung2 lesion moved by the
synthetic breathing), readable back voxel for voxel and free of dciodvfy errors."""

import json

import highdicom as hd
import numpy as np
import pydicom
import pytest

from dicom_tools import dciodvfy_errors
from rtsam.cli import main
from rtsam.io import read_image, read_rtstruct
from rtsam.io.dicom_export import read_reference
from conftest import oblique_direction
from rtsam.errors import InputError
from rtsam.itv.dicom_out import export_itv_dicom, write_itv_dicom
from rtsam.resample import on_same_voxels, same_voxel_centres
from rtsam.volume import Volume
from test_itv_cli import small_case  # noqa: F401 (fixture)

NAMES = ["ITV", "GTV_phase00", "GTV_phase01", "GTV_phase02"]


@pytest.fixture(scope="module")
def dicom_4dct(small_case):
    folder, (ct, gtv) = small_case
    out = folder / "dicom4d"
    assert main(["itv-generate", str(ct), str(gtv), "--out-dir", str(out), "--phases", "3", "--amplitude-si", "5",
                 "--format", "dicom"]) == 0
    return out


def run_itv(capsys, *argv):
    code = main(["itv", *map(str, argv), "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


def expected_masks(folder):
    phases = sorted((folder / "masks").glob("phase_*.nrrd"), key=lambda p: float(p.name[6:-5]))
    assert len(phases) == 3
    return [read_image(path).array for path in [folder / "itv.nrrd", *phases]]


def test_itv_rtstruct_from_a_dicom_4dct(dicom_4dct, tmp_path, capsys):
    report = run_itv(capsys, "--dicom", dicom_4dct / "dicom", "--init-mask", dicom_4dct / "init_mask.nrrd",
                     "--out", tmp_path / "itv.nrrd", "--phase-masks-dir", tmp_path / "masks",
                     "--out-dicom", tmp_path / "itv_rtss.dcm")
    assert report["dicom"]["path"] == str(tmp_path / "itv_rtss.dcm") and report["dicom"]["empty_phases"] == []
    assert report["dicom"]["written_reference_series"] is None
    reference = read_reference(sorted((dicom_4dct / "dicom").glob("phase00_*.dcm"))[0])
    structures = read_rtstruct(tmp_path / "itv_rtss.dcm")
    assert structures.names == NAMES
    for name, expected in zip(NAMES, expected_masks(tmp_path)):
        assert np.array_equal(structures.mask(name, reference.volume).array, expected), name
    ds = pydicom.dcmread(tmp_path / "itv_rtss.dcm")
    series = ds.ReferencedFrameOfReferenceSequence[0].RTReferencedStudySequence[0].RTReferencedSeriesSequence[0]
    assert series.SeriesInstanceUID == reference.datasets[0].SeriesInstanceUID  # the reference phase's series
    assert ds.StructureSetROISequence[0].ROIGenerationAlgorithm == "SEMIAUTOMATIC"
    assert dciodvfy_errors(tmp_path / "itv_rtss.dcm") == []


def test_itv_seg_from_phase_files_writes_the_reference_series(small_case, tmp_path, capsys):
    folder, (ct, gtv) = small_case
    out = tmp_path / "gen"
    assert main(["itv-generate", str(ct), str(gtv), "--out-dir", str(out), "--phases", "3", "--amplitude-si", "5",
                 "--format", "files"]) == 0
    capsys.readouterr()
    report = run_itv(capsys, *sorted(out.glob("phase_*.nrrd")), "--init-mask", out / "init_mask.nrrd",
                     "--out", tmp_path / "itv.nrrd", "--phase-masks-dir", tmp_path / "masks",
                     "--out-dicom", tmp_path / "itv.seg.dcm", "--dicom-format", "seg")
    series = tmp_path / "itv_series"
    assert report["dicom"]["written_reference_series"] == str(series)
    reference = read_reference(series)
    seg = hd.seg.segread(tmp_path / "itv.seg.dcm")
    assert [s.SegmentLabel for s in seg.SegmentSequence] == NAMES
    uids = [d.SOPInstanceUID for d in reference.datasets]
    pixels = seg.get_pixels_by_source_instance(uids, segment_numbers=[1, 2, 3, 4])
    for n, expected in enumerate(expected_masks(tmp_path)):
        assert np.array_equal(pixels[..., n], expected), NAMES[n]
    assert dciodvfy_errors(tmp_path / "itv.seg.dcm") == [] and dciodvfy_errors(reference.volume.metadata["files"][0]) == []


def test_empty_phase_masks_are_left_out_and_named(dicom_4dct, tmp_path):
    reference = read_reference(sorted((dicom_4dct / "dicom").glob("phase00_*.dcm"))[0])
    mask = reference.volume.with_array(read_image(dicom_4dct / "init_mask.nrrd").array)
    empty = mask.with_array(np.zeros_like(mask.array))
    path, left_out = write_itv_dicom(mask, [mask, empty], reference, tmp_path / "rtss.dcm")
    assert left_out == ["GTV_phase01"] and read_rtstruct(path).names == ["ITV", "GTV_phase00"]
    with pytest.raises(Exception, match="ITV is empty"):
        write_itv_dicom(empty, [mask], reference, tmp_path / "none.dcm")


def test_export_moves_the_masks_onto_a_series_that_sorts_its_slices_the_other_way(tmp_path):
    """A phase whose k axis runs against the slice normal (oblique, non-DICOM input): the written series
    holds the same voxels in the other order, and the structures land on them exactly."""
    direction = oblique_direction()
    direction[:, 2] *= -1
    k, j, i = np.mgrid[0:6, 0:9, 0:11]
    phase = Volume((100 * k + 10 * j + i).astype(np.int16), (1.0, 1.5, 2.5), (10.0, -20.0, 5.0), direction)
    itv = phase.with_array(((abs(i - 5) < 4) & (abs(j - 4) < 3) & (k < 4)).astype(np.uint8))
    phases = [itv.with_array(itv.array * (k < 2)), itv.with_array(itv.array * (k >= 1))]
    written = export_itv_dicom(itv, phases, phase, tmp_path / "itv.dcm")
    series = read_reference(written["written_reference_series"])
    assert same_voxel_centres(series.volume, phase) and not series.volume.same_grid(phase)
    structures = read_rtstruct(written["path"])
    for name, mask in zip(NAMES, [itv, *phases]):
        assert np.array_equal(structures.mask(name, series.volume).array, on_same_voxels(mask, series.volume).array)
    assert np.array_equal(on_same_voxels(series.volume, phase).array, phase.array)  # the CT written voxel for voxel
    shifted = Volume(itv.array, itv.spacing, (10.5, -20.0, 5.0), direction)
    assert on_same_voxels(shifted, series.volume) is shifted  # other voxels: left for the export to refuse
    with pytest.raises(InputError, match="not on the grid of the reference series"):
        export_itv_dicom(shifted, [shifted], phase, tmp_path / "off.dcm", reference=series)
