"""HTTP transport to an rtsam server: version handshake, API key, timeouts, retries.

Transient failures are retried with exponential backoff: a connection that could not be
opened, and 502/503/504 answers (the server refused before doing anything). A connection
lost mid-request is retried only for idempotent requests, so a click is never added twice.
"""

from __future__ import annotations

import time
import warnings

import httpx

from .. import __version__
from ..errors import CancelledError, RTSAMError
from ..server import API_VERSION

RETRY_STATUS = {502, 503, 504}
NEVER_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
LOST = (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError, httpx.ReadTimeout, httpx.WriteTimeout)


class RemoteError(RTSAMError):
    """The server answered with an error (``status``) or could not be reached (``status`` None)."""

    def __init__(self, message: str, status: int | None = None):
        self.status = status
        super().__init__(message)


class Transport:
    def __init__(self, url: str, api_key: str | None = None, timeout: float = 120.0, retries: int = 3,
                 backoff: float = 0.5, max_backoff: float = 8.0):
        self.url = url.rstrip("/")
        self.retries, self.backoff, self.max_backoff = int(retries), float(backoff), float(max_backoff)
        headers = {"X-RTSAM-API": str(API_VERSION), "User-Agent": f"rtsam-client/{__version__}"}
        if api_key:
            headers["X-API-Key"] = api_key
        self.client = httpx.Client(base_url=self.url, headers=headers, trust_env=False,
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
                **kwargs) -> httpx.Response:
        """Send with retries; raise ``RemoteError`` with the server's message on any error status."""
        if checked:
            self.handshake()
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                response = self.client.request(method, path, **kwargs)
            except NEVER_SENT as error:
                if last:
                    raise RemoteError(f"cannot reach the rtsam server at {self.url}: {error}") from None
            except LOST as error:
                if last or not idempotent:
                    raise RemoteError(f"lost the connection to {self.url} during {method} {path}: "
                                      f"{type(error).__name__}") from None
            else:
                if response.status_code < 400:
                    return response
                if last or response.status_code not in RETRY_STATUS:
                    raise _error(response)
            time.sleep(min(self.max_backoff, self.backoff * 2**attempt))
        raise AssertionError("unreachable")


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
