"""``RemoteEngine``: the ``Engine`` interface served by a remote rtsam server.

``open(image)`` uploads the image once (compressed, with its geometry) and returns a
context whose ``predict`` sends only the prompt; the server keeps the embeddings. If the
server forgot the session (idle eviction, restart) the context uploads the image again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..engines.base import Engine, EngineContext, Prompt, ProgressCallback, SegmentationResult, check_cancel
from ..server import wire
from ..volume import Volume
from .transport import RemoteError, Transport

GONE = {404, 410}


@dataclass(frozen=True)
class RemoteResult:
    """``SegmentationResult.state`` of a remote result: where the server keeps its logits."""

    session_id: str
    result_id: str


class RemoteEngine(Engine):
    name = "remote"

    def __init__(self, url: str, api_key: str | None = None, timeout: float = 120.0, retries: int = 3,
                 backoff: float = 0.5, probability: bool = True, busy_retries: int = 10,
                 ca_bundle: str | None = None, insecure: bool = False):
        """``timeout``: seconds to wait for an answer (the server refuses early what it cannot answer by
        then); ``busy_retries``: waits for a busy server; ``ca_bundle``/``insecure``: TLS verification."""
        super().__init__(weights_label="remote", device=url)
        self.transport = Transport(url, api_key, timeout, retries, backoff, busy_retries=busy_retries,
                                   ca_bundle=ca_bundle, insecure=insecure)
        self.probability = probability

    def test_connection(self) -> dict:
        """Server versions, engine, weights, device and limits; raises ``RemoteError`` with the reason."""
        return self.transport.request("GET", "/v1/info").json()

    def open(self, image: Volume) -> "RemoteContext":
        return RemoteContext(self, image)

    def upload(self, image: Volume) -> str:
        """Open a server session on ``image``; returns its id."""
        body = wire.encode_volumes({"image": image})
        response = self.transport.request("POST", "/v1/sessions", content=body, idempotent=False,
                                          headers={"Content-Type": wire.CONTENT_TYPE})
        return response.json()["session_id"]

    def close(self) -> None:
        self.transport.close()


class RemoteContext(EngineContext):
    engine: RemoteEngine

    def __init__(self, engine: RemoteEngine, image: Volume):
        super().__init__(engine, image)
        self.session_id = engine.upload(image)

    def predict(self, prompt: Prompt, previous: SegmentationResult | None = None,
                progress: ProgressCallback | None = None,
                cancel: Callable[[], bool] | None = None) -> SegmentationResult:
        prompt.validate_against(self.image)
        check_cancel(cancel)
        if progress:
            progress(0.0, "waiting for the server")
        state = previous.state if previous is not None else None
        body = {"prompt": wire.prompt_to_dict(prompt), "probability": self.engine.probability,
                "previous": state.result_id if isinstance(state, RemoteResult) and state.session_id == self.session_id
                else None}
        start = time.perf_counter()
        try:
            response = self._post_predict(body, progress, cancel)
        except RemoteError as error:
            if error.status not in GONE:
                raise
            self.session_id = self.engine.upload(self.image)  # the server forgot us: upload again
            response = self._post_predict({**body, "previous": None}, progress, cancel)
        result = decode_result(response.content, self.image, self.session_id)
        result.timings_ms["round_trip"] = (time.perf_counter() - start) * 1000.0
        check_cancel(cancel)
        if progress:
            progress(1.0, "done")
        return result

    def _post_predict(self, body: dict, progress: ProgressCallback | None, cancel: Callable[[], bool] | None):
        return self.engine.transport.request("POST", f"/v1/sessions/{self.session_id}/predict", json=body,
                                             progress=progress, cancel=cancel)

    def close(self) -> None:
        """Close the server session (idempotent)."""
        try:
            self.engine.transport.request("DELETE", f"/v1/sessions/{self.session_id}")
        except RemoteError as error:
            if error.status not in GONE:
                raise


def decode_result(content: bytes, image: Volume, session_id: str) -> SegmentationResult:
    """A result frame as a ``SegmentationResult`` on ``image``'s grid."""
    frame = wire.decode(content)
    mask = frame.arrays["mask"]
    if mask.shape != image.array.shape:
        raise RemoteError(f"server returned a mask of shape {mask.shape} for an image of shape {image.array.shape}")
    probability = frame.arrays.get("probability", mask.astype(np.float32))
    meta = frame.meta
    return SegmentationResult(
        probability=image.with_array(probability), mask=image.with_array(mask), quality=meta.get("quality"),
        engine=meta.get("engine", "remote"), weights=meta.get("weights", "unknown"),
        timings_ms=dict(meta.get("timings_ms", {})), info=dict(meta.get("info", {})),
        state=RemoteResult(session_id, meta["result_id"]))
