"""Server-side sessions: one uploaded image, its cached embeddings, prompts and recent results.

Memory is bounded three ways: at most ``max_sessions`` open sessions (then refusal), at most
``max_cached`` sessions holding image embeddings (least recently used ones drop theirs and
recompute on their next click), and idle sessions are closed after ``idle_timeout`` seconds.
Session ids are ``secrets.token_urlsafe`` strings bound to the owner (API-key fingerprint):
another owner gets the same "unknown session" answer as for an id that never existed.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from typing import Callable

from ..engines.base import Engine, EngineContext, Prompt, SegmentationResult
from ..volume import Volume
from .wire import prompt_to_dict

RESULTS_KEPT = 8  # recent results a prediction may refine (each holds a mask and logits)
EXPIRED_REMEMBERED = 4096


class StoreError(Exception):
    status = 400
    retry_after: float | None = None  # seconds; sent as Retry-After when set


class UnknownSession(StoreError):
    status = 404


class SessionExpired(StoreError):
    status = 410


class StoreFull(StoreError):
    status = 503
    retry_after = 30.0


class OwnerLimit(StoreError):
    status = 429


class ServerSession:
    """One image on the server; every operation on it holds ``lock``."""

    def __init__(self, session_id: str, owner: str, image: Volume, engine: Engine, now: float):
        self.id = session_id
        self.owner = owner
        self.image = image
        self.engine = engine
        self.created = self.last_used = now
        self.lock = threading.Lock()
        self.results: OrderedDict[str, SegmentationResult] = OrderedDict()
        self.warm = False  # embeddings computed (a prediction ran since the last cache drop)
        self._context: EngineContext | None = None
        self._interactive = None

    def context(self) -> EngineContext:
        """The engine context for stateless predictions (embeddings cached inside)."""
        if self._context is None:
            self._context = self.engine.open(self.image)
        return self._context

    def interactive(self):
        """The ``rtsam.session.Session`` holding task, box, clicks and undo history (same context)."""
        if self._interactive is None:
            from ..session import Session

            self._interactive = Session(self.image, _Opened(self.engine, self.context()))
        return self._interactive

    def remember(self, result: SegmentationResult) -> str:
        result_id = secrets.token_urlsafe(12)
        self.results[result_id] = result
        while len(self.results) > RESULTS_KEPT:
            self.results.popitem(last=False)
        return result_id

    def drop_cache(self) -> None:
        """Free the embeddings (they are recomputed on the next prediction)."""
        self.warm = False
        if self._context is not None:
            self._context.clear_cache()

    def state(self) -> dict:
        """What requests can change: prompt, undo/redo depth, result shown and results kept."""
        interactive = self._interactive  # created on first use, like an empty one
        shown = None if interactive is None else interactive.result
        return {"owner": self.owner, "results": list(self.results),
                "prompt": prompt_to_dict(Prompt() if interactive is None else interactive.prompt),
                "history": (0, 0) if interactive is None else interactive.history,
                "shown": None if shown is None else id(shown)}

    def info(self) -> dict:
        return {"session_id": self.id, "shape": list(self.image.array.shape), "dtype": str(self.image.array.dtype),
                "spacing": list(self.image.spacing), "created_s_ago": round(time.monotonic() - self.created, 1)}


class _Opened(Engine):
    """``engine`` whose ``open`` hands out an existing context, so a Session shares its embeddings."""

    def __init__(self, engine: Engine, context: EngineContext):
        super().__init__(engine.weights_label, engine.device)
        self.name, self._context = engine.name, context

    def open(self, image: Volume) -> EngineContext:
        return self._context


class SessionStore:
    def __init__(self, engine: Engine, max_sessions: int = 32, idle_timeout: float = 1800.0,
                 max_cached: int | None = None, max_per_owner: int | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.engine = engine
        self.max_sessions = max_sessions
        self.idle_timeout = idle_timeout
        self.max_cached = max_cached or max_sessions
        self.max_per_owner = max_per_owner or max_sessions
        self.clock = clock
        self._sessions: dict[str, ServerSession] = {}
        self._cached: OrderedDict[str, ServerSession] = OrderedDict()
        self._expired: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._sessions)

    def check_room(self, owner: str) -> None:
        """Raise ``StoreFull`` or ``OwnerLimit`` when ``owner`` cannot open a session now."""
        self.evict_idle()
        with self._lock:
            self._check_room(owner)

    def create(self, owner: str, image: Volume) -> ServerSession:
        self.evict_idle()
        with self._lock:
            self._check_room(owner)
            session = ServerSession(secrets.token_urlsafe(24), owner, image, self.engine, self.clock())
            self._sessions[session.id] = session
            return session

    def get(self, owner: str, session_id: str) -> ServerSession:
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None or session.owner != owner:
                if self._expired.get(session_id) == owner:
                    raise SessionExpired(f"session {session_id} was closed after {self.idle_timeout:g} s idle; "
                                         "upload the image again")
                raise UnknownSession(f"unknown session {session_id}")
            session.last_used = self.clock()
            return session

    def close(self, owner: str, session_id: str) -> None:
        session = self.get(owner, session_id)
        with session.lock:  # waits for an operation in flight on this session
            with self._lock:
                self._remove(session)

    def mark_cached(self, session: ServerSession) -> None:
        """Record that ``session`` now holds embeddings; drop the least recently used beyond the limit."""
        with self._lock:
            self._cached[session.id] = session
            self._cached.move_to_end(session.id)
            for victim in list(self._cached.values())[: max(0, len(self._cached) - self.max_cached)]:
                if victim.lock.acquire(blocking=False):  # a session in use keeps its cache
                    try:
                        victim.drop_cache()
                    finally:
                        victim.lock.release()
                    del self._cached[victim.id]

    def evict_idle(self) -> int:
        """Close sessions idle longer than ``idle_timeout``; returns how many."""
        limit = self.clock() - self.idle_timeout
        with self._lock:
            idle = [s for s in self._sessions.values() if s.last_used < limit and s.lock.acquire(blocking=False)]
            for session in idle:
                self._remove(session)
                self._expired[session.id] = session.owner
                session.lock.release()
            while len(self._expired) > EXPIRED_REMEMBERED:
                self._expired.popitem(last=False)
        return len(idle)

    def state(self) -> dict:
        """Every open session's ``state()`` by id (for checks that a refused request changed nothing)."""
        with self._lock:
            return {sid: session.state() for sid, session in self._sessions.items()}

    def stats(self) -> dict:
        with self._lock:
            return {"sessions": len(self._sessions), "max_sessions": self.max_sessions,
                    "cached_embeddings": len(self._cached), "max_cached": self.max_cached,
                    "idle_timeout_s": self.idle_timeout}

    def _check_room(self, owner: str) -> None:
        if len(self._sessions) >= self.max_sessions:
            raise StoreFull(f"server is full: {len(self._sessions)} sessions open (limit {self.max_sessions}); "
                            "close unused sessions or retry later")
        owned = sum(s.owner == owner for s in self._sessions.values())
        if owned >= self.max_per_owner:
            raise OwnerLimit(f"this API key already has {owned} open sessions (limit {self.max_per_owner}); "
                             "close some first (limit: --max-sessions-per-key)")

    def _remove(self, session: ServerSession) -> None:
        self._sessions.pop(session.id, None)
        self._cached.pop(session.id, None)
        session.drop_cache()
        session.results.clear()
