"""Replies to repeated requests: a POST or DELETE sent again with the same ``Idempotency-Key``
(the client's retry after a connection lost mid-request) gets the first answer back instead of
being applied twice (a click added twice, a second session for one upload).

Answers are kept per presented credentials, method, path and key, for successful (2xx) requests
only, for ``TTL_S`` seconds and at most ``MAX_REPLIES`` of them; a repeat that arrives while the
first is still being served waits for it. Large answers (over ``MAX_BODY``) are not kept.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from typing import Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.responses import Response

from . import IDEMPOTENCY_HEADER

TTL_S = 600.0
MAX_REPLIES = 4096
MAX_BODY = 1 << 16
METHODS = {"POST", "DELETE"}


class Replies:
    """The kept answers (status, headers, body) by request key, oldest first."""

    def __init__(self):
        self._kept: OrderedDict[str, tuple[float, int, dict, bytes]] = OrderedDict()
        self._serving: dict[str, asyncio.Event] = {}

    async def answer(self, key: str, serve: Callable[[], Awaitable[Response]]) -> Response:
        """The kept answer to ``key``, else ``serve()``'s (kept when successful and small)."""
        while key in self._serving:  # the first sending is still being served
            await self._serving[key].wait()
        self._forget_old()
        if key in self._kept:
            _, status, headers, body = self._kept[key]
            return Response(body, status, headers)
        self._serving[key] = done = asyncio.Event()
        try:
            response = await serve()
            if 200 <= response.status_code < 300 and int(response.headers.get("content-length", MAX_BODY + 1)) <= MAX_BODY:
                body = b"".join([chunk async for chunk in response.body_iterator])
                self._keep(key, response.status_code, dict(response.headers), body)
                return Response(body, response.status_code, dict(response.headers))
            return response
        finally:
            del self._serving[key]
            done.set()

    def _keep(self, key: str, status: int, headers: dict, body: bytes) -> None:
        self._kept[key] = (time.monotonic(), status, headers, body)
        while len(self._kept) > MAX_REPLIES:
            self._kept.popitem(last=False)

    def _forget_old(self) -> None:
        oldest = time.monotonic() - TTL_S
        while self._kept and next(iter(self._kept.values()))[0] < oldest:
            self._kept.popitem(last=False)


def request_key(request: Request) -> str | None:
    """The key of a POST/DELETE carrying an ``Idempotency-Key`` (None for any other request)."""
    idempotency = request.headers.get(IDEMPOTENCY_HEADER)
    if request.method not in METHODS or not idempotency:
        return None
    credentials = (request.headers.get("x-api-key", ""), request.headers.get("authorization", ""))
    parts = (*credentials, request.method, request.url.path, idempotency)
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def add_idempotency(app: FastAPI) -> None:
    replies = Replies()

    @app.middleware("http")
    async def replay_repeats(request: Request, call_next):
        key = request_key(request)
        if key is None:
            return await call_next(request)
        return await replies.answer(key, lambda: call_next(request))
