"""Running the app with uvicorn: in the foreground (``rtsam serve``) or in a thread (tests, load test)."""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from typing import Iterator

import uvicorn
from fastapi import FastAPI

from .config import ServerConfig

log = logging.getLogger("rtsam.server")
LOOPBACK = {"127.0.0.1", "::1", "localhost"}


def serve(app: FastAPI, config: ServerConfig) -> None:
    """Serve until interrupted."""
    if config.host not in LOOPBACK and not config.api_keys:
        log.warning("serving on %s without an API key: anyone who can reach this port can use the server",
                    config.host)
    if config.host not in LOOPBACK and not config.tls_cert:
        log.warning("serving on %s over plain HTTP: clients refuse to send a key to it; use --tls-cert/--tls-key",
                    config.host)
    uvicorn.run(app, host=config.host, port=config.port, log_level="info", **tls_options(config))


def tls_options(config: ServerConfig) -> dict:
    """uvicorn's certificate settings (empty without ``--tls-cert``)."""
    return {"ssl_certfile": config.tls_cert, "ssl_keyfile": config.tls_key} if config.tls_cert else {}


@contextlib.contextmanager
def background_server(app: FastAPI, host: str = "127.0.0.1", timeout: float = 30.0) -> Iterator[str]:
    """Run ``app`` on a free loopback port in a daemon thread; yields its base URL (https with
    the app config's ``tls_cert``)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    port = sock.getsockname()[1]
    tls = tls_options(app.state.config)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=5, **tls))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="rtsam-server")
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    try:
        yield f"{'https' if tls else 'http'}://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout)
        sock.close()
