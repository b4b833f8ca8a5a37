"""A bounded load test: N concurrent clients, each with its own session, image and clicks.

Every client uploads a differently sized crop, sets a box, then alternates adding a click and
segmenting, through the server-side session endpoints, with the client's transport: a busy
server's 503 is retried after its ``Retry-After`` (counted as a refusal). Each answer is checked
against what that client sent (its own prompt echoed back, a mask of its own image's shape), so
one session seeing another's data fails the run. It stops after the last click.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import replace
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..client.transport import Transport
from ..volume import Volume
from . import wire

KINDS = ("upload", "edit", "segment")


def run_load_test(url: str, image: Volume, box_lps: np.ndarray, sessions: int = 20, clicks: int = 2,
                  api_key: str | None = None, timeout: float = 300.0, **tls) -> dict:
    """Run the load test against ``url``; returns latency percentiles per kind, refusals and failures.

    ``latency_ms``: the answered attempt (send to answer); ``with_retries_ms``: first send to answer,
    waits for a busy server included; ``segments_over_deadline``: segments answered later than the
    server's deadline. ``tls``: ``ca_bundle``/``insecure`` for an https server."""
    info = Transport(url, api_key, timeout, **tls)
    deadline_s = info.request("GET", "/v1/info").json()["limits"]["deadline_s"]
    info.close()
    stats = _Stats()
    start = time.perf_counter()
    with ThreadPoolExecutor(sessions) as pool:
        futures = [pool.submit(_client, url, api_key, timeout, tls, _variant(image, n), box_lps, clicks, n, stats)
                   for n in range(sessions)]
        for future in futures:
            try:
                future.result()
            except Exception as error:  # every failure is reported, none stops the others
                stats.failures.append(f"{type(error).__name__}: {error}")
    wall = time.perf_counter() - start
    return {"sessions": sessions, "clicks_per_session": clicks, "wall_s": round(wall, 2),
            "requests": sum(len(v) for v in stats.served.values()) + sum(stats.refused.values()),
            "latency_ms": {k: _percentiles(v) for k, v in stats.served.items()},
            "with_retries_ms": {k: _percentiles(v) for k, v in stats.total.items()},
            "refused_busy": dict(stats.refused), "timeouts": sum("Timeout" in f for f in stats.failures),
            "deadline_s": deadline_s,
            "segments_over_deadline": sum(ms > deadline_s * 1000.0 for ms in stats.served["segment"]),
            "failures": stats.failures}


class _Stats:
    def __init__(self):
        self.served: dict[str, list[float]] = {k: [] for k in KINDS}
        self.total: dict[str, list[float]] = {k: [] for k in KINDS}
        self.refused: Counter = Counter()
        self.failures: list[str] = []
        self.lock = threading.Lock()


def _variant(image: Volume, n: int) -> Volume:
    """Client ``n``'s own image: the crop minus ``n % 8`` columns (a distinct shape) with shifted values."""
    cols = image.array.shape[2] - n % 8
    return replace(image, array=image.array[:, :, :cols] + np.asarray(n % 3, dtype=image.array.dtype))


def _client(url, api_key, timeout, tls, image, box, clicks, n, stats: _Stats) -> None:
    rng = np.random.default_rng(n)
    http = Transport(url, api_key, timeout, busy_retries=1000, **tls)

    def call(kind, method, path, **kwargs):
        def busy(fraction, message):
            with stats.lock:
                stats.refused[kind] += 1

        t0 = time.perf_counter()
        # a click sent again after a dropped connection carries its Idempotency-Key: never added twice
        response = http.request(method, path, idempotent=not path.endswith("/clicks"), progress=busy, **kwargs)
        with stats.lock:
            stats.total[kind].append((time.perf_counter() - t0) * 1000.0)
            stats.served[kind].append(response.elapsed.total_seconds() * 1000.0)
        return response

    try:
        body = wire.encode_volumes({"image": image})
        sid = call("upload", "POST", "/v1/sessions", content=body,
                   headers={"Content-Type": wire.CONTENT_TYPE}).json()["session_id"]
        call("edit", "PUT", f"/v1/sessions/{sid}/box", json={"box_lps": np.asarray(box).tolist()})
        sent = []
        for _ in range(clicks):
            lps = image.ijk_to_lps([rng.uniform(0, s - 1) for s in image.size_ijk[:2]] + [0]).tolist()
            sent.append(lps)
            state = call("edit", "POST", f"/v1/sessions/{sid}/clicks", json={"lps": lps}).json()
            echoed = [c["lps"] for c in state["prompt"]["clicks"]]
            if not np.allclose(echoed, sent):
                raise RuntimeError(f"client {n}: session {sid} holds clicks {echoed}, sent {sent}")
            frame = wire.decode(call("segment", "POST", f"/v1/sessions/{sid}/segment",
                                     json={"probability": False}).content)
            if frame.arrays["mask"].shape != image.array.shape:
                raise RuntimeError(f"client {n}: got a mask of shape {frame.arrays['mask'].shape} "
                                   f"for its image of shape {image.array.shape}")
        call("edit", "DELETE", f"/v1/sessions/{sid}")
    finally:
        http.close()


def _percentiles(values: list[float]) -> dict:
    if not values:
        return {}
    p = np.percentile(values, [50, 90, 99])
    return {"n": len(values), "p50": round(float(p[0]), 1), "p90": round(float(p[1]), 1),
            "p99": round(float(p[2]), 1), "max": round(float(max(values)), 1)}


def example_case(margin: int = 16) -> tuple[Volume, np.ndarray]:
    """Two axial slices of the real lung2 CT around its tumour and a box on the first slice only."""
    from ..data import example
    from ..io.images import read_image

    image = read_image(example("pyradiomics/lung2_image.nrrd"))
    k, j, i = np.nonzero(read_image(example("pyradiomics/lung2_label.nrrd")).array)
    kc = (int(k.min()) + int(k.max())) // 2
    j0, j1, i0, i1 = j.min() - margin, j.max() + margin, i.min() - margin, i.max() + margin
    crop = Volume(image.array[kc:kc + 2, j0:j1 + 1, i0:i1 + 1], spacing=image.spacing,
                  origin=tuple(image.ijk_to_lps([i0, j0, kc])), direction=image.direction)
    on_slice = k == kc
    lo = crop.ijk_to_lps([i[on_slice].min() - i0, j[on_slice].min() - j0, -0.2])
    hi = crop.ijk_to_lps([i[on_slice].max() - i0, j[on_slice].max() - j0, 0.2])
    return crop, np.array([np.minimum(lo, hi), np.maximum(lo, hi)])
