"""Shared pieces of the server and client tests: one CPU engine, a real image crop, a live server."""

from __future__ import annotations

import contextlib
import functools

import httpx
import numpy as np

from rtsam.data import data_dir
from rtsam.io.images import read_image
from rtsam.server import wire
from rtsam.volume import Volume

KEY = "test-key-0123456789abcdef"
OTHER_KEY = "other-key-0123456789abcdef"
FRAME = {"Content-Type": wire.CONTENT_TYPE}


def client(url, key=KEY, **kwargs) -> httpx.Client:
    """A plain HTTP client presenting ``key`` (none when empty)."""
    return httpx.Client(base_url=url, headers={"X-API-Key": key} if key else {}, trust_env=False, timeout=120,
                        **kwargs)


@functools.lru_cache(maxsize=1)
def cpu_engine():
    """LiteMedSAM on CPU, loaded once per test process."""
    from rtsam.engines.registry import load_engine

    return load_engine("litemedsam", device="cpu")


def lung_crop() -> tuple[Volume, np.ndarray]:
    """2 axial slices of the real lung2 CT around its tumour (oblique geometry) and the tumour's LPS box."""
    image, _, box = lung_crop_with_mask()
    return image, box


@functools.lru_cache(maxsize=1)
def lung_crop_with_mask() -> tuple[Volume, Volume, np.ndarray]:
    """The crop of ``lung_crop``, its tumour mask and the tumour's LPS box."""
    from conftest import oblique_direction

    image = read_image(data_dir() / "pyradiomics/lung2_image.nrrd")
    label = read_image(data_dir() / "pyradiomics/lung2_label.nrrd").array
    k, j, i = np.nonzero(label)
    kc = (k.min() + k.max()) // 2
    lo = np.array([i.min() - 16, j.min() - 16, kc])
    hi = np.array([i.max() + 16, j.max() + 16, kc + 1])
    array = image.array[lo[2]:hi[2] + 1, lo[1]:hi[1] + 1, lo[0]:hi[0] + 1]
    crop = Volume(array, spacing=image.spacing, origin=(-40.0, 12.5, 100.0), direction=oblique_direction())
    sel = label[lo[2]:hi[2] + 1, lo[1]:hi[1] + 1, lo[0]:hi[0] + 1]
    kk, jj, ii = np.nonzero(sel)
    corners = crop.ijk_to_lps([[ii.min(), jj.min(), kk.min()], [ii.max(), jj.max(), kk.max()]])
    return crop, crop.with_array(sel.astype(np.uint8)), np.array([corners.min(axis=0), corners.max(axis=0)])


def make_app(**settings):
    from rtsam.server.app import create_app
    from rtsam.server.config import ServerConfig

    return create_app(ServerConfig(**settings), engine=cpu_engine())


@contextlib.contextmanager
def live_server(**settings):
    """A real uvicorn server on a free 127.0.0.1 port; yields (url, app)."""
    from rtsam.server.run import background_server

    app = make_app(**settings)
    with background_server(app) as url:
        yield url, app
