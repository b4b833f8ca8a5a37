"""Every file pydicom ships (compressed, big endian, no meta header, truncated, RT objects, SR, SEG,
colour, multi-frame) alone, beside a real CT series and all together: each reads or is refused in
one line naming it, and the real series still reads beside any of them."""

import logging
import shutil
import subprocess
import sys

import numpy as np
import pytest

from dicom_helpers import TEST_FILES, ct_volume, pydicom_test_files, write_ct_series
from conftest import oblique_direction
from rtsam.cli import main
from rtsam.errors import InputError
from rtsam.io import read_image, read_rtdose
from rtsam.io.dicom import read_dataset

FILES = pydicom_test_files()


def is_rtdose(path) -> bool:
    try:
        return str(read_dataset(path, header_only=True).get("Modality", "")) == "RTDOSE"
    except InputError:
        return False


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    """An oblique 3-slice CT series written by rtsam, and its volume."""
    folder = tmp_path_factory.mktemp("series")
    volume = ct_volume(oblique_direction(20))
    return folder, write_ct_series(folder, volume), volume


def assert_is_the_series(read, volume):
    np.testing.assert_array_equal(read.array, volume.array)
    np.testing.assert_allclose(read.origin, volume.origin, atol=1e-4)
    np.testing.assert_allclose(read.spacing, volume.spacing, atol=1e-5)
    np.testing.assert_allclose(read.direction, volume.direction, atol=1e-6)


def test_pydicom_ships_its_test_files():
    assert len([f for f in FILES if f.suffix == ".dcm"]) >= 70


@pytest.mark.parametrize("source", FILES, ids=[f.name for f in FILES])
def test_each_file_alone_reads_or_is_named_in_one_line(source, tmp_path, capsys, rt_case):
    alone = tmp_path / source.name
    shutil.copy(source, alone)
    commands = [("evaluate", alone, alone), ("evaluate", tmp_path, tmp_path), ("dose-box", alone),
                ("dvh", rt_case / "rtdose.dcm", alone)]
    for argv in commands:
        code, out, err = run_cli(capsys, *argv, "--json")
        errors = [line for line in err.splitlines() if ": error: " in line]
        assert code in (0, 2) and "Traceback" not in err
        if code == 2:
            assert len(errors) == 1 and source.name in errors[0], err
        else:  # a slice compared with itself, a dose box, DVH rows
            assert errors == [] and ('"dice": 1.0' in out if argv[0] == "evaluate" else out.startswith(("{", "[")))
    if is_rtdose(source):  # all are RELATIVE (refused); read as Gy they must read too
        with pytest.raises(InputError, match=f"{source.name}: DoseUnits 'RELATIVE'"):
            read_rtdose(source)


@pytest.mark.parametrize("source", FILES, ids=[f.name for f in FILES])
def test_the_series_reads_beside_each_file(source, series, tmp_path, caplog):
    folder = tmp_path / "series"
    shutil.copytree(series[0], folder)
    shutil.copy(source, folder / source.name)
    with caplog.at_level(logging.WARNING, logger="rtsam.io"):
        read = read_image(folder / series[1][0].name)
    assert_is_the_series(read, series[2])
    left_out = [r.getMessage() for r in caplog.records if source.name in r.getMessage()]
    assert len(left_out) <= 1
    if left_out:  # named once, and kept in the volume's metadata
        assert "left out" in left_out[0] and str(folder / source.name) in read.metadata["skipped_files"]
    else:  # an image series of its own: the folder then needs a series UID
        with pytest.raises(InputError, match="2 image series found"):
            read_image(folder)
    assert_is_the_series(read_image(folder, series_uid=read.metadata["series_uid"]), series[2])


def test_the_whole_folder(series, tmp_path):
    with pytest.raises(InputError, match=r"test_files: \d+ image series found, choose one") as info:
        read_image(TEST_FILES)
    uids = [part.split(" (")[0] for part in str(info.value).split("series UID: ")[1].split("; ")]
    assert len(uids) >= 3
    for uid in uids:  # each reads, or is refused naming a file of it
        try:
            assert read_image(TEST_FILES, series_uid=uid).array.ndim == 3
        except InputError as error:
            assert str(TEST_FILES) in str(error)
    folder = tmp_path / "all"
    shutil.copytree(TEST_FILES, folder, ignore=shutil.ignore_patterns("dicomdirtests"))
    for f in series[1]:
        shutil.copy(f, folder / f.name)
    assert_is_the_series(read_image(folder / series[1][1].name), series[2])


def test_cli_subprocess_one_line_error_and_one_line_warnings(series, tmp_path):
    truncated = tmp_path / "MR_truncated.dcm"
    shutil.copy(TEST_FILES / "MR_truncated.dcm", truncated)
    command = [sys.executable, "-m", "rtsam", "evaluate"]
    result = subprocess.run(command + [str(truncated)] * 2, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.splitlines() == [result.stderr.strip()] and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"rtsam evaluate: error: {truncated}: cannot read this slice")

    folder = tmp_path / "series"
    shutil.copytree(series[0], folder)
    for name in ("rtdose_1frame.dcm", "rtplan.dcm", "README.txt"):
        shutil.copy(TEST_FILES / name, folder / name)
    result = subprocess.run(command + [str(series[1][0].name), str(series[1][1].name)], cwd=folder,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and "dice" in result.stdout and "Traceback" not in result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("rtsam evaluate: warning: ")]
    for name in ("rtdose_1frame.dcm", "rtplan.dcm", "README.txt"):  # once per read of the folder
        assert len([w for w in warnings if name in w]) == 2, result.stderr


def test_4dct_folder_with_odd_files(tmp_path, caplog):
    from rtsam.itv.dicom4d import read_dicom_phases, write_dicom_phases

    phases = [ct_volume(oblique_direction(10), shape=(3, 8, 8)) for _ in range(2)]
    phases[1].array += 7
    write_dicom_phases(phases, tmp_path, [0.0, 50.0])
    for name in ("rtdose_1frame.dcm", "README.txt"):
        shutil.copy(TEST_FILES / name, tmp_path / name)
    volumes, values = read_dicom_phases(tmp_path)
    assert values == [0.0, 50.0]
    np.testing.assert_array_equal(volumes[1].array, phases[0].array + 7)
    np.testing.assert_allclose(volumes[0].direction, phases[0].direction, atol=1e-6)
    assert sorted(r.getMessage().split(": left out")[0] for r in caplog.records) == [
        str(tmp_path / "README.txt"), str(tmp_path / "rtdose_1frame.dcm")]


def test_real_rt_case_and_a_dicomdir_export(rt_case, caplog):
    volume = read_image(rt_case)  # the CT slice beside its RTDOSE, RTPLAN and RTSTRUCT
    assert volume.array.shape == (1, 512, 512) and volume.metadata["modality"] == "CT"
    assert sorted(volume.metadata["skipped_files"]) == [str(rt_case / n) for n in ("rtdose.dcm", "rtplan.dcm", "rtss.dcm")]
    assert len([r for r in caplog.records if "left out: is a DICOM RT" in r.getMessage()]) == 3
    with pytest.raises(InputError, match=r"dicomdirtests: no DICOM image series found in this folder \(DICOMDIR is a "
                                         r"DICOMDIR \(an index of files\), not an image; \d+ more files left out\); "
                                         "sub-folders are not searched"):
        read_image(TEST_FILES / "dicomdirtests")
