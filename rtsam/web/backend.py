"""The viewer's backend: engines in this process, behind the interface the module logics take
(``engine(name)``, ``open_session(image, engine)``); sessions are plain ``rtsam.session.Session``."""

from __future__ import annotations

import asyncio
import threading

from ..volume import Volume


class InProcessBackend:
    """Loads each engine once (rtsam's engine registry) and opens rtsam Sessions on it."""

    kind = "in-process"

    def __init__(self, device: str = "cpu"):
        self.device = device
        self._engines: dict[str, object] = {}
        self._lock = threading.Lock()

    def engine(self, name: str | None = None):
        from ..engines.registry import DEFAULT_ENGINE, load_engine

        name = name or DEFAULT_ENGINE
        with self._lock:  # predictions run in worker threads
            if name not in self._engines:
                self._engines[name] = load_engine(name, None, self.device)
            return self._engines[name]

    def open_session(self, image: Volume, engine: str | None = None):
        from ..session import Session

        return Session(image, self.engine(engine))


class Progress:
    """Progress written by a worker thread, read by the UI loop."""

    def __init__(self):
        self.fraction, self.message, self.cancelled = 0.0, "", False

    def __call__(self, fraction: float, message: str = "") -> None:
        self.fraction, self.message = float(fraction), message

    def cancel(self) -> bool:
        return self.cancelled


async def run_in_worker(work, progress: Progress | None = None, report=None, interval_s: float = 0.25):
    """Run ``work()`` in a thread; call ``report(progress)`` on the UI loop until it is done."""
    future = asyncio.get_running_loop().run_in_executor(None, work)
    while report is not None and not future.done():
        report(progress)
        await asyncio.wait([future], timeout=interval_s)
    return await future
