"""HTTP transport to an rtsam server: version handshake, API key, TLS, timeouts, retries.

Transient failures are retried with jittered exponential backoff: a connection that could not
be opened, and 502/503/504 answers (the server refused before doing anything). A busy server
(503, or 429 with ``Retry-After``) is retried after the time it asks for, plus jitter, with the
503's ticket (the place the server keeps for it in its queue), and each wait is reported through
the progress callback ("server busy, retrying (n/N)"). A connection lost mid-request is retried
too: a request that is not idempotent (an upload, a click, a job) carries an ``Idempotency-Key``
kept across its retries, and the server answers a repeat with its first answer, so a click is
never added twice.

Certificates are verified by default (``ca_bundle`` for a private CA); ``insecure=True`` turns
verification off with a warning. An API key is never sent over plain HTTP to another machine.
"""

from __future__ import annotations

import random
import ssl
import time
import uuid
import warnings
from pathlib import Path
from typing import Callable

import httpx

from .. import __version__
from ..engines.base import ProgressCallback
from ..errors import CancelledError, InputError, RTSAMError
from ..server import API_VERSION, DEADLINE_HEADER, IDEMPOTENCY_HEADER, RETRY_JITTER, TICKET_HEADER

RETRY_STATUS = {502, 503, 504}
NEVER_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
LOST = (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError, httpx.ReadTimeout, httpx.WriteTimeout)
LOOPBACK = {"127.0.0.1", "::1", "localhost"}
KEEPALIVE_S = 30.0
"""Seconds an idle pooled connection is reused: below the idle timeout of our server (75 s) and of
common proxies (60 s and more), so the client never sends on a connection the server is closing (a
reset there costs a retry). The default, 5 s, equals uvicorn's own."""


class RemoteError(RTSAMError):
    """The server answered with an error (``status``) or could not be reached (``status`` None)."""

    def __init__(self, message: str, status: int | None = None):
        self.status = status
        super().__init__(message)


class Transport:
    def __init__(self, url: str, api_key: str | None = None, timeout: float = 120.0, retries: int = 3,
                 backoff: float = 0.5, max_backoff: float = 8.0, busy_retries: int = 10,
                 ca_bundle: str | Path | None = None, insecure: bool = False):
        self.url = url.rstrip("/")
        self.retries, self.backoff, self.max_backoff = int(retries), float(backoff), float(max_backoff)
        self.busy_retries = int(busy_retries)
        headers = {"X-RTSAM-API": str(API_VERSION), "User-Agent": f"rtsam-client/{__version__}",
                   DEADLINE_HEADER: f"{timeout:g}"}
        if api_key:
            _refuse_key_in_clear(self.url)
            headers["X-API-Key"] = api_key
        self.client = httpx.Client(base_url=self.url, headers=headers, trust_env=False,
                                   verify=_verify(ca_bundle, insecure),
                                   limits=httpx.Limits(keepalive_expiry=KEEPALIVE_S),
                                   timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)))
        self.server_version: dict | None = None

    def close(self) -> None:
        self.client.close()

    def handshake(self) -> dict:
        """Check that the server speaks our API version; warn when rtsam versions differ."""
        if self.server_version is None:
            theirs = self.request("GET", "/v1/version", checked=False).json()
            if theirs.get("api") != API_VERSION:
                raise RemoteError(
                    f"version mismatch: the server at {self.url} runs rtsam {theirs.get('rtsam')} (API "
                    f"{theirs.get('api')}) but this client is rtsam {__version__} (API {API_VERSION}); "
                    f"install the same rtsam version on both sides")
            if theirs.get("rtsam") != __version__:
                warnings.warn(f"server runs rtsam {theirs.get('rtsam')}, this client rtsam {__version__} "
                              "(same API, so it works; update when convenient)", stacklevel=3)
            self.server_version = theirs
        return self.server_version

    def request(self, method: str, path: str, *, idempotent: bool = True, checked: bool = True,
                progress: ProgressCallback | None = None, cancel: Callable[[], bool] | None = None,
                **kwargs) -> httpx.Response:
        """Send with retries; raise ``RemoteError`` with the server's message on any error status."""
        if checked:
            self.handshake()
        if not idempotent:  # the server answers this key's repeats without applying them again
            kwargs["headers"] = {**dict(kwargs.get("headers") or {}), IDEMPOTENCY_HEADER: uuid.uuid4().hex}
        failures = busy = 0
        while True:
            try:
                response = self.client.request(method, path, **kwargs)
            except NEVER_SENT as error:
                if failures == self.retries:
                    raise RemoteError(f"cannot reach the rtsam server at {self.url}: {_reason(error)}") from None
            except LOST as error:
                if failures == self.retries:
                    raise RemoteError(f"lost the connection to {self.url} during {method} {path}: "
                                      f"{type(error).__name__}") from None
            else:
                if response.status_code < 400:
                    return response
                retry_after = _retry_after(response)
                if retry_after is not None and response.status_code in (429, 503):
                    if busy == self.busy_retries:
                        raise _error(response)
                    busy += 1
                    if TICKET_HEADER in response.headers:  # the retry takes the place kept for it
                        kwargs["headers"] = {**dict(kwargs.get("headers") or {}),
                                             TICKET_HEADER: response.headers[TICKET_HEADER]}
                    if progress is not None:
                        progress(0.0, f"server busy, retrying ({busy}/{self.busy_retries})")
                    _sleep(retry_after * random.uniform(1.0, RETRY_JITTER), cancel)
                    continue
                if failures == self.retries or response.status_code not in RETRY_STATUS:
                    raise _error(response)
            _sleep(min(self.max_backoff, self.backoff * 2**failures) * random.uniform(1.0, 1.5), cancel)
            failures += 1


def _refuse_key_in_clear(url: str) -> None:
    parsed = httpx.URL(url)
    if parsed.scheme != "https" and parsed.host not in LOOPBACK:
        raise InputError(f"refusing to send the API key over plain HTTP to {parsed.host}: use an https:// URL "
                         "(rtsam serve --tls-cert/--tls-key) or an SSH tunnel to 127.0.0.1")


def _verify(ca_bundle: str | Path | None, insecure: bool) -> ssl.SSLContext | bool:
    if insecure:
        warnings.warn("TLS certificate verification is off (insecure): anyone on the network path can read "
                      "the API key and the images; use only for a self-signed test setup", stacklevel=4)
        return False
    if ca_bundle is None:
        return True
    path = Path(ca_bundle).expanduser()
    try:
        return ssl.create_default_context(cafile=str(path))
    except (OSError, ssl.SSLError) as error:
        raise InputError(f"cannot use the CA bundle: {error}", path) from None


def _reason(error: Exception) -> str:
    text = str(error)
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return f"{text} (pass the server's CA with ca_bundle / --ca-bundle)"
    return text


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return max(0.0, float(response.headers["Retry-After"]))
    except (KeyError, ValueError):
        return None


def _sleep(seconds: float, cancel: Callable[[], bool] | None) -> None:
    """Sleep, waking every 0.1 s to honour ``cancel``."""
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        if cancel is not None and cancel():
            raise CancelledError("cancelled by the user while waiting for the server")
        time.sleep(min(0.1, left))


def _error(response: httpx.Response) -> RTSAMError:
    try:
        detail = response.json().get("detail")
    except ValueError:
        detail = response.text[:200]
    if isinstance(detail, list):  # FastAPI validation errors
        detail = "; ".join(f"{'.'.join(map(str, d.get('loc', [])))}: {d.get('msg')}" for d in detail)
    message = f"server answered {response.status_code}: {detail}"
    if response.status_code == 409:
        return CancelledError(message)
    return RemoteError(message, response.status_code)
