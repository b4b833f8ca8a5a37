"""The viewer's backend (the modules' in-process one: rtsam Sessions on engines in this process) and
worker-thread helpers for the model calls."""

from __future__ import annotations

import asyncio


def in_process_backend(device: str = "cpu"):
    """The modules' own in-process backend (``RTSAMCommon.backends.InProcessBackend``)."""
    from .modules import add_module_paths

    add_module_paths()
    from RTSAMCommon import backends

    return backends.InProcessBackend(device)


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
