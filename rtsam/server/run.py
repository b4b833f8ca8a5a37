"""Running the app with uvicorn: in the foreground (``rtsam serve``), for a parent program
(``--ready-file``) or in a thread (tests, load test), all through ``BoundServer``."""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from typing import Callable, Iterator

import uvicorn
from fastapi import FastAPI

from .config import ServerConfig

log = logging.getLogger("rtsam.server")
LOOPBACK = {"127.0.0.1", "::1", "localhost"}
KEEP_ALIVE_S = 75
"""Seconds an idle keep-alive connection stays open (nginx's default). Clients must reuse theirs for
less (``rtsam.client.transport.KEEPALIVE_S``): a connection the server closes just as a client sends
on it is reset, and the request must then be sent again (safe, by its ``Idempotency-Key``, but slower)."""


class BoundServer:
    """``app``'s uvicorn server on a socket bound at once (``port`` 0: a free one), with its URL
    (https with the app config's ``tls_cert``)."""

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning"):
        ipv6 = ":" in host
        self.socket = socket.socket(socket.AF_INET6 if ipv6 else socket.AF_INET, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind((host, port))
        tls = tls_options(app.state.config)
        port = self.socket.getsockname()[1]
        self.url = f"{'https' if tls else 'http'}://{f'[{host}]' if ipv6 else host}:{port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level=log_level,
                                                    timeout_keep_alive=KEEP_ALIVE_S, timeout_graceful_shutdown=5,
                                                    **tls))

    def run(self, on_started: Callable[[], None] | None = None) -> None:
        """Serve until stopped (in the main thread: also until SIGINT/SIGTERM); call ``on_started``
        (in another thread) once the server answers."""
        if on_started is not None:
            threading.Thread(target=lambda: self.wait_started() and on_started(), daemon=True).start()
        try:
            self.server.run(sockets=[self.socket])
        finally:
            self.socket.close()

    def wait_started(self, timeout: float | None = None) -> bool:
        """True once the server answers; False when it was stopped first or ``timeout`` passed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.server.started:
            if self.server.should_exit or self.socket.fileno() < 0 or \
                    (deadline is not None and time.monotonic() > deadline):
                return False
            time.sleep(0.01)
        return True

    def stop(self) -> None:
        self.server.should_exit = True


def serve(app: FastAPI, config: ServerConfig) -> None:
    """Serve until interrupted."""
    if config.host not in LOOPBACK and not config.api_keys:
        log.warning("serving on %s without an API key: anyone who can reach this port can use the server",
                    config.host)
    if config.host not in LOOPBACK and not config.tls_cert:
        log.warning("serving on %s over plain HTTP: clients refuse to send a key to it; use --tls-cert/--tls-key",
                    config.host)
    bound = BoundServer(app, config.host, config.port, log_level="info")
    bound.run(on_started=lambda: print(f"rtsam serve: listening on {bound.url} (Ctrl+C to stop)", flush=True))


def tls_options(config: ServerConfig) -> dict:
    """uvicorn's certificate settings (empty without ``--tls-cert``)."""
    return {"ssl_certfile": config.tls_cert, "ssl_keyfile": config.tls_key} if config.tls_cert else {}


@contextlib.contextmanager
def background_server(app: FastAPI, host: str = "127.0.0.1", timeout: float = 30.0) -> Iterator[str]:
    """Run ``app`` on a free loopback port in a daemon thread; yields its base URL."""
    bound = BoundServer(app, host)
    thread = threading.Thread(target=bound.run, daemon=True, name="rtsam-server")
    thread.start()
    if not bound.wait_started(timeout):
        bound.stop()
        raise RuntimeError("the test server did not start")
    try:
        yield bound.url
    finally:
        bound.stop()
        thread.join(timeout)
