"""The interface every segmentation engine implements.

An engine is loaded once (weights on a device). ``Engine.open(image)`` gives an
``EngineContext`` bound to one image: it owns the image embeddings (computed once per crop
or slice and cached) so that each ``predict`` with a new click only re-runs the decoder.
Boxes and clicks are physical LPS millimetres; results come back on the image's own grid.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ..errors import CancelledError, InputError
from ..volume import Volume

LOW_QUALITY = 0.5  # results whose quality is below this are flagged "low quality, review"
PRESENCE_CHOICES = ("on", "off")  # a prompt's object-presence choice; None: the engine's own setting

ProgressCallback = Callable[[float, str], None]
"""Called with a fraction in [0, 1] and a short message."""


@dataclass(frozen=True)
class Click:
    lps: tuple[float, float, float]
    positive: bool = True

    def __post_init__(self):
        lps = tuple(float(v) for v in self.lps)
        if len(lps) != 3 or not np.all(np.isfinite(lps)):
            raise InputError(f"a click needs 3 finite LPS coordinates, got {self.lps}")
        object.__setattr__(self, "lps", lps)


@dataclass
class Prompt:
    """Progressive prompts: task text, a 3D box, then refinement clicks."""

    task: str | None = None
    patient: str | None = None
    box_lps: np.ndarray | None = None  # [[x0, y0, z0], [x1, y1, z1]] LPS mm, min then max corner
    clicks: list[Click] = field(default_factory=list)
    box_fitted: bool = False  # the box hugs a known segmentation (plus a small margin): do not shrink it
    presence: str | None = None  # "on": leave slices where the object ended empty; "off"; None: engine default

    def __post_init__(self):
        if self.box_lps is not None:
            self.box_lps = validate_box(self.box_lps)
        if self.presence is not None and self.presence not in PRESENCE_CHOICES:
            raise InputError(f"presence must be 'on', 'off' or None (the engine's default), got {self.presence!r}")

    def box_key(self) -> tuple | None:
        """The box as a hashable key (0.1 µm rounding), for engines that reuse work while it is unchanged."""
        return None if self.box_lps is None else tuple(np.round(self.box_lps, 4).ravel())

    def validate_against(self, image: Volume) -> None:
        """Raise a clear error when the box or a click lies outside the image."""
        if self.box_lps is not None:
            lo, hi = image.bounds_lps()
            overlap = np.minimum(hi, self.box_lps[1]) - np.maximum(lo, self.box_lps[0])
            if np.any(overlap < 0):
                raise InputError(
                    f"box {np.round(self.box_lps, 1).tolist()} mm does not overlap the image "
                    f"(extent {np.round(lo, 1).tolist()} to {np.round(hi, 1).tolist()} mm)",
                    image.metadata.get("path"),
                )
        for click in self.clicks:
            image.check_inside(click.lps, "click")


def validate_box(box) -> np.ndarray:
    box = np.asarray(box, dtype=float)
    if box.shape == (6,):
        box = box.reshape(2, 3)
    if box.shape != (2, 3) or not np.all(np.isfinite(box)):
        raise InputError(f"a box needs 6 finite LPS coordinates (x0 y0 z0 x1 y1 z1), got {box.tolist()}")
    box = np.sort(box, axis=0)
    if np.any(box[1] - box[0] <= 0):
        raise InputError(f"box {box.tolist()} has zero size along an axis")
    return box


@dataclass
class SegmentationResult:
    probability: Volume  # float32 in [0, 1] on the image grid
    mask: Volume  # uint8 0/1 on the image grid
    quality: float | None  # predicted IoU where the model has one
    engine: str
    weights: str  # file name and short sha256 of the weights that produced it
    timings_ms: dict[str, float] = field(default_factory=dict)
    state: Any = None  # engine-specific feedback (e.g. low-res logits) for the next predict
    info: dict = field(default_factory=dict)  # JSON-ready engine notes (e.g. which prompts the weights support)

    def summary(self) -> dict:
        return {
            "engine": self.engine,
            "weights": self.weights,
            "quality": None if self.quality is None else round(float(self.quality), 4),
            "low_quality": is_low_quality(self.quality),
            "volume_ml": round(float(self.mask.array.sum()) * self.mask.voxel_volume_ml, 3),
            "timings_ms": {k: round(v, 2) for k, v in self.timings_ms.items()},
            **({"info": self.info} if self.info else {}),
        }


class SliceCache:
    """Per-slice features of one image, computed once, the ``size`` most recently used kept.
    Thread-safe; the computation runs outside the lock."""

    def __init__(self, size: int):
        self.size = max(1, int(size))
        self._items: OrderedDict[int, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, k: int, compute: Callable[[], Any]) -> Any:
        with self._lock:
            if k in self._items:
                self._items.move_to_end(k)
                return self._items[k]
        value = compute()
        with self._lock:
            self._items[k] = value
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return value

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    @property
    def keys(self) -> list[int]:
        with self._lock:
            return list(self._items)


class EngineContext(ABC):
    """One engine bound to one image; caches embeddings across predictions."""

    def __init__(self, engine: "Engine", image: Volume):
        check_image(image)
        self.engine = engine
        self.image = image

    @abstractmethod
    def predict(
        self,
        prompt: Prompt,
        previous: SegmentationResult | None = None,
        progress: ProgressCallback | None = None,
        cancel: Callable[[], bool] | None = None,
    ) -> SegmentationResult:
        """Segment with ``prompt``; ``previous`` feeds back the last result's logits."""

    def clear_cache(self) -> None:
        """Drop cached embeddings."""


class SliceWiseContext(EngineContext):
    """A 2D engine's context: per-slice features in a SliceCache of ``engine.cache_slices``."""

    def __init__(self, engine: "Engine", image: Volume):
        super().__init__(engine, image)
        self._cache = SliceCache(engine.cache_slices)

    @property
    def model(self):
        return self.engine.model

    def clear_cache(self) -> None:
        self._cache.clear()

    @property
    def cached_slices(self) -> list[int]:
        return self._cache.keys


class Engine(ABC):
    name: str = "engine"
    accepts_clicks: bool = True  # False: prompts derived from results (ITV propagation) carry no clicks

    def __init__(self, weights_label: str, device: str = "cpu"):
        self.weights_label = weights_label
        self.device = device

    @abstractmethod
    def open(self, image: Volume) -> EngineContext: ...

    def segment(self, image: Volume, prompt: Prompt, **kwargs) -> SegmentationResult:
        return self.open(image).predict(prompt, **kwargs)


def default_presence(engine: Engine) -> str | None:
    """The engine's own object-presence setting, "on" or "off"; None for an engine without a presence
    rule (an engine with one, litemedsam, holds it as ``presence``)."""
    if not hasattr(engine, "presence"):
        return None
    return "off" if engine.presence is None else "on"


def check_presence(prompt: Prompt, engine: Engine) -> None:
    """Refuse presence "on" for an engine without a presence rule ("off" and None ask for nothing)."""
    if prompt.presence == "on" and default_presence(engine) is None:
        raise InputError(f"the {engine.name} engine has no object-presence rule (litemedsam has one): "
                         "set presence 'off' or leave it unset")


def is_low_quality(quality: float | None) -> bool:
    """Whether a result of this quality should be reviewed (None: the engine gives no quality)."""
    return quality is not None and quality < LOW_QUALITY


def check_image(image: Volume) -> None:
    if not np.issubdtype(image.array.dtype, np.number) and image.array.dtype != bool:
        raise InputError(f"image voxels must be numeric, got {image.array.dtype}", image.metadata.get("path"))
    if image.array.dtype.kind == "f" and not np.all(np.isfinite(image.array)):
        n = int((~np.isfinite(image.array)).sum())
        raise InputError(f"image has {n} non-finite voxels (NaN or Inf)", image.metadata.get("path"))
    if min(image.array.shape) < 2:
        raise InputError(f"image must be 3D with at least 2 voxels per axis, got shape {image.array.shape}",
                         image.metadata.get("path"))


def check_cancel(cancel: Callable[[], bool] | None) -> None:
    if cancel is not None and cancel():
        raise CancelledError("cancelled by the user")


@contextmanager
def timed(timings: dict[str, float], key: str):
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[key] = timings.get(key, 0.0) + (time.perf_counter() - start) * 1000.0
