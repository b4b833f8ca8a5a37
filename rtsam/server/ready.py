"""``rtsam serve --ready-file``: serving for a parent program (the Slicer modules' local backend).

The server binds a free loopback port (``--port 0``), writes ``{"url", "pid"}`` to the ready
file once it answers requests, and with ``--exit-with-stdin`` stops when its standard input
closes, which happens when the parent exits or crashes on every platform.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import threading
import time
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from .config import ServerConfig

log = logging.getLogger("rtsam.server")
READY_LINE = "rtsam serve: ready at"


def serve_for_parent(app: FastAPI, config: ServerConfig, ready_file: str | Path, exit_with_stdin: bool = False) -> None:
    """Serve until stopped; announce the bound URL through ``ready_file`` (written atomically)."""
    sock = socket.socket(socket.AF_INET6 if ":" in config.host else socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((config.host, config.port))
    host = f"[{config.host}]" if ":" in config.host else config.host
    url = f"http://{host}:{sock.getsockname()[1]}"
    server = uvicorn.Server(uvicorn.Config(app, log_level="info", timeout_graceful_shutdown=5))
    threading.Thread(target=_announce, args=(server, url, Path(ready_file)), daemon=True).start()
    if exit_with_stdin:
        threading.Thread(target=_stop_at_stdin_eof, args=(server,), daemon=True).start()
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()


def _announce(server: uvicorn.Server, url: str, ready_file: Path) -> None:
    while not server.started:
        if server.should_exit:
            return
        time.sleep(0.02)
    partial = ready_file.with_name(ready_file.name + ".part")
    partial.write_text(json.dumps({"url": url, "pid": os.getpid()}), encoding="utf-8")
    os.replace(partial, ready_file)
    print(f"{READY_LINE} {url}", flush=True)


def _stop_at_stdin_eof(server: uvicorn.Server) -> None:
    while sys.stdin.buffer.read(1024):
        pass
    log.info("parent process closed our standard input: stopping")
    server.should_exit = True
