"""A private ``rtsam serve`` on loopback, started on first use and shared within this process.

The Slicer modules' local backend: the model runs in its own process (Slicer's UI never waits
on it and a crash of the model cannot take Slicer down), reached through the same client as a
remote server. Each server gets a free port, a random one-time API key (in a file only this
user can read, never on the command line) and a log file; it stops with ``stop()``, at exit
of this process, or by itself when this process dies (its standard input closes).

    server = local_server("litemedsam")          # started if needed, shared
    engine = server.wait_ready(progress=report)  # a RemoteEngine once the model is loaded
"""

from __future__ import annotations

import atexit
import json
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable

from ..errors import CancelledError, RTSAMError

PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the folder holding the rtsam package
START_TIMEOUT_S = 900.0  # first start may download nothing but loads a model (minutes on a slow disk)
LOG_TAIL_LINES = 20


class LocalServerError(RTSAMError):
    """The local server could not start or stopped unexpectedly; the message holds its log's tail."""


class LocalServer:
    def __init__(self, engine: str | None = None, weights: str | None = None, device: str = "auto",
                 python: str | None = None, log_dir: str | Path | None = None):
        self.engine_name, self.weights, self.device = engine, weights or None, device
        self.python = python or sys.executable
        self.api_key = secrets.token_urlsafe(32)
        self._dir = Path(tempfile.mkdtemp(prefix="rtsam-local-"))  # mode 0700
        self.log_path = Path(log_dir or self._dir) / f"rtsam-serve-{engine or 'default'}-{os.getpid()}.log"
        self.url: str | None = None
        self._process: subprocess.Popen | None = None
        self._log = None
        self._engine = None
        self._lock = threading.Lock()

    # --- lifecycle --------------------------------------------------------------------
    def command(self) -> list[str]:
        key_file = self._dir / "api-key"
        key_file.write_text(self.api_key + "\n", encoding="utf-8")
        key_file.chmod(0o600)
        command = [self.python, "-m", "rtsam", "serve", "--host", "127.0.0.1", "--port", "0",
                   "--api-key-file", str(key_file), "--device", self.device,
                   "--ready-file", str(self._dir / "ready.json"), "--exit-with-stdin"]
        if self.engine_name:
            command += ["--engine", self.engine_name]
        if self.weights:
            command += ["--checkpoint", str(self.weights)]
        return command

    def start(self) -> "LocalServer":
        """Spawn the server (returns at once; ``wait_ready`` waits for the model to load)."""
        with self._lock:
            if self.running:
                return self
            env = dict(os.environ, PYTHONUNBUFFERED="1")
            env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PACKAGE_ROOT), env.get("PYTHONPATH")) if p)
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = open(self.log_path, "ab")
            flags = getattr(subprocess, "CREATE_NO_WINDOW", 0)  # Windows: no console window
            self._process = subprocess.Popen(self.command(), stdin=subprocess.PIPE, stdout=self._log,
                                             stderr=subprocess.STDOUT, env=env, creationflags=flags)
            self.url, self._engine = None, None
        return self

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def wait_ready(self, timeout: float = START_TIMEOUT_S, progress: Callable[[float, str], None] | None = None,
                   cancel: Callable[[], bool] | None = None):
        """The server's ``RemoteEngine`` once it answers; raises ``LocalServerError`` with the log's tail
        when the process ends first or ``timeout`` passes (the process is then stopped)."""
        if self._engine is not None and self.running:
            return self._engine
        if not self.running:
            self.start()
        ready, start = self._dir / "ready.json", time.monotonic()
        while not ready.is_file():
            if not self.running:
                raise LocalServerError(f"the local rtsam server stopped while starting:\n{self.log_tail()}")
            if cancel is not None and cancel():
                raise CancelledError("cancelled while the local rtsam server was starting")
            waited = time.monotonic() - start
            if waited > timeout:
                self.stop()
                raise LocalServerError(f"the local rtsam server did not start within {timeout:.0f} s:\n{self.log_tail()}")
            if progress is not None:
                progress(0.0, f"starting the local rtsam server ({self.engine_name or 'default engine'}): "
                              f"{waited:.0f} s")
            time.sleep(0.2)
        from .engine import RemoteEngine

        self.url = json.loads(ready.read_text(encoding="utf-8"))["url"]
        self._engine = RemoteEngine(self.url, api_key=self.api_key, timeout=600.0, retries=1)
        return self._engine

    def stop(self, timeout: float = 10.0) -> None:
        """Close standard input (the server stops by itself), then terminate, then kill."""
        with self._lock:
            process, self._process = self._process, None
            if self._engine is not None:
                self._engine.close()
                self._engine = None
            if process is not None:
                _end(process, timeout)
            if self._log is not None:
                self._log.close()
                self._log = None
            for name in ("api-key", "ready.json"):
                (self._dir / name).unlink(missing_ok=True)

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def __repr__(self) -> str:
        state = f"pid {self.pid} at {self.url}" if self.running else "stopped"
        return f"LocalServer({self.engine_name}, {state}, log {self.log_path})"


def _end(process: subprocess.Popen, timeout: float) -> None:
    try:
        if process.stdin is not None:
            process.stdin.close()
        process.wait(timeout)
    except (subprocess.TimeoutExpired, OSError):
        process.terminate()
        try:
            process.wait(5.0)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5.0)


_servers: dict[tuple, LocalServer] = {}
_servers_lock = threading.Lock()


def local_server(engine: str | None = None, weights: str | None = None, device: str = "auto",
                 python: str | None = None, log_dir: str | Path | None = None) -> LocalServer:
    """The shared server for (engine, weights, device), started when not running."""
    key = (engine, str(weights) if weights else None, device)
    with _servers_lock:
        server = _servers.get(key)
        if server is None:
            server = _servers[key] = LocalServer(engine, weights, device, python, log_dir)
    return server.start()


def known_servers() -> list[LocalServer]:
    """The servers started in this process and not stopped by ``stop_all`` (running or crashed)."""
    return list(_servers.values())


def running_servers() -> list[LocalServer]:
    return [server for server in known_servers() if server.running]


def stop_all() -> None:
    """Stop every local server this process started (at exit, on module reload)."""
    with _servers_lock:
        servers = list(_servers.values())
        _servers.clear()
    for server in servers:
        server.stop()


atexit.register(stop_all)
