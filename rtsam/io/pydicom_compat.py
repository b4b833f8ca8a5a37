"""What differs between pydicom 2.4 (bundled with Slicer 5.10) and pydicom 3 (Slicer 5.12, this
repository's pin), so rtsam runs on the pydicom each supported Slicer ships."""

from __future__ import annotations

from pathlib import Path


def save_dicom(dataset, path: str | Path) -> None:
    """Write a DICOM Part 10 file (preamble, file meta) with either pydicom."""
    import pydicom

    if int(pydicom.__version__.split(".")[0]) >= 3:
        dataset.save_as(path, enforce_file_format=True)
    else:  # pydicom 2.x spelling of the same
        dataset.save_as(path, write_like_original=False)
