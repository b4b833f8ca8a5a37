"""Sample data for the self-tests: the real files in the project's data folder, else downloaded
from their upstream repositories with SHA-256 checks (Slicer's SampleData module)."""

from __future__ import annotations

from pathlib import Path

SAMPLES = {  # file name: (folder in shared/data, upstream URL, sha256)
    "brain1_image.nrrd": ("pyradiomics", "https://github.com/AIM-Harvard/pyradiomics/raw/v3.0.1/data/brain1_image.nrrd",
                          "fffdb111ee8b428ede7256707393c927a7d5be912f0604cf3c6f1bd5fc9644cf"),
    "brain1_label.nrrd": ("pyradiomics", "https://github.com/AIM-Harvard/pyradiomics/raw/v3.0.1/data/brain1_label.nrrd",
                          "ae6d8e6b84f7e99d68c210ee2fa6aaaefa0b2df0a84f55efca4feebe2b216059"),
    "rtdose.dcm": ("dicompyler_breast_rt",
                   "https://github.com/dicompyler/dicompyler-core/raw/v0.5.6/tests/testdata/example_data/rtdose.dcm",
                   "a78d4d7723e280b1baf8153a43583fda384a681428eca306b53ada37ef7d3123"),
}


def localSample(name: str) -> Path | None:
    """The file in the project's data folder, when present."""
    from rtsam.data import data_dir
    from rtsam.errors import InputError

    try:
        path = data_dir() / SAMPLES[name][0] / name
    except InputError:
        return None
    return path if path.is_file() else None


def downloadSample(name: str) -> Path:
    """Local file, or a checksum-verified download into Slicer's cache (needs the Slicer app)."""
    local = localSample(name)
    if local is not None:
        return local
    import SampleData

    _, url, sha256 = SAMPLES[name]
    paths = SampleData.SampleDataLogic().downloadFromURL(fileNames=name, uris=url, checksums=f"SHA256:{sha256}",
                                                        loadFiles=False)
    return Path(paths[0])


def registerSampleData() -> None:
    """Show the brain MR case in the Sample Data module (category RTSAM)."""
    import SampleData

    SampleData.SampleDataLogic.registerCustomSampleDataSource(
        category="RTSAM", sampleName="RTSAM brain1 MR", uris=[SAMPLES[n][1] for n in ("brain1_image.nrrd", "brain1_label.nrrd")],
        fileNames=["brain1_image.nrrd", "brain1_label.nrrd"], nodeNames=["brain1", "brain1 label"],
        checksums=[f"SHA256:{SAMPLES[n][2]}" for n in ("brain1_image.nrrd", "brain1_label.nrrd")],
        loadFileType=["VolumeFile", "LabelMapVolumeFile"])
