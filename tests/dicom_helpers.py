"""DICOM test data: pydicom's own test files and small CT series written by rtsam's DICOM writer."""

from pathlib import Path

import numpy as np
import pydicom
import pydicom.data

from rtsam.itv.dicom4d import write_dicom_phases
from rtsam.volume import Volume

TEST_FILES = Path(pydicom.data.__file__).parent / "test_files"


def pydicom_test_files() -> list[Path]:
    """Every file pydicom ships in its test_files folder (DICOM or not)."""
    return sorted(p for p in TEST_FILES.iterdir() if p.is_file())


def ct_volume(direction=None, shape=(3, 32, 32)) -> Volume:
    """A small CT with distinct values per voxel (slice k holds 1000 * k + 32 * row + column - 1000)."""
    nk, nj, ni = shape
    array = (1000 * np.arange(nk)[:, None, None] + 32 * np.arange(nj)[None, :, None] + np.arange(ni) - 1000)
    return Volume(array.astype(np.int16), spacing=(0.8, 0.7, 2.5), origin=(-120.5, 33.0, -250.0),
                  direction=np.eye(3) if direction is None else direction, frame_of_reference_uid=None)


def write_ct_series(folder: Path, volume: Volume) -> list[Path]:
    """The volume as one CT series (explicit VR little endian), slice files in k order."""
    write_dicom_phases([volume], folder, [0.0])
    return sorted(folder.glob("*.dcm"))


def pydicom_reference(files: list[Path]) -> np.ndarray:
    """pydicom's own decoding of each slice with its rescale, stacked along the slice normal."""
    datasets = [pydicom.dcmread(f) for f in files]
    normal = np.cross(*np.reshape(np.asarray(datasets[0].ImageOrientationPatient, float), (2, 3)))
    datasets.sort(key=lambda ds: float(np.asarray(ds.ImagePositionPatient, float) @ normal))
    return np.stack([ds.pixel_array * float(ds.get("RescaleSlope", 1)) + float(ds.get("RescaleIntercept", 0))
                     for ds in datasets])
