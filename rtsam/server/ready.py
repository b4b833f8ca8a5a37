"""``rtsam serve --ready-file``: serving for a parent program (the Slicer modules' local backend).

The server binds a free loopback port (``--port 0``), writes ``{"url", "pid"}`` to the ready
file once it answers requests, and with ``--exit-with-stdin`` stops when its standard input
closes, which happens when the parent exits or crashes on every platform.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from pathlib import Path

from fastapi import FastAPI

from .config import ServerConfig
from .run import BoundServer

log = logging.getLogger("rtsam.server")
READY_LINE = "rtsam serve: ready at"


def serve_for_parent(app: FastAPI, config: ServerConfig, ready_file: str | Path, exit_with_stdin: bool = False) -> None:
    """Serve until stopped; announce the bound URL through ``ready_file`` (written atomically)."""
    bound = BoundServer(app, config.host, config.port, log_level="info")
    if exit_with_stdin:
        threading.Thread(target=_stop_at_stdin_eof, args=(bound,), daemon=True).start()
    bound.run(on_started=lambda: _announce(bound.url, Path(ready_file)))


def _announce(url: str, ready_file: Path) -> None:
    partial = ready_file.with_name(ready_file.name + ".part")
    partial.write_text(json.dumps({"url": url, "pid": os.getpid()}), encoding="utf-8")
    os.replace(partial, ready_file)
    print(f"{READY_LINE} {url}", flush=True)


def _stop_at_stdin_eof(bound: BoundServer) -> None:
    while sys.stdin.buffer.read(1024):
        pass
    log.info("parent process closed our standard input: stopping")
    bound.stop()
