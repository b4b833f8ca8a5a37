"""API-key authentication: constant-time comparison, keys never logged or stored in clear.

A request presents its key as ``X-API-Key: KEY`` or ``Authorization: Bearer KEY``. Sessions
are owned by the SHA-256 fingerprint of the key that created them, so the key itself is
never kept beside the sessions.
"""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

from ..errors import InputError

ANONYMOUS = "anonymous"
HEADER = "X-API-Key"


class AuthError(Exception):
    """A missing or wrong key; the app answers 401 without echoing the key."""


def load_keys(api_key: str | None = None, api_key_file: str | Path | None = None) -> list[str]:
    """Keys from ``--api-key`` or a file with one key per line (blank lines and ``#`` comments skipped)."""
    keys = [api_key] if api_key else []
    if api_key_file:
        path = Path(api_key_file).expanduser()
        try:
            lines = path.read_text().splitlines()
        except OSError as error:
            raise InputError(f"cannot read the API key file: {error.strerror}", path) from None
        keys += [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]
        if not keys:
            raise InputError("the API key file holds no key", path)
    for key in keys:
        if len(key) < 16:
            raise InputError("an API key must be at least 16 characters (use secrets.token_urlsafe())")
    return keys


def fingerprint(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:16]


class KeyChecker:
    def __init__(self, keys: list[str]):
        self._digests = [hashlib.sha256(k.encode()).digest() for k in keys]

    @property
    def required(self) -> bool:
        return bool(self._digests)

    def owner(self, x_api_key: str | None, authorization: str | None) -> str:
        """The owner id for the presented key; ``AuthError`` when a key is required and wrong."""
        if not self.required:
            return ANONYMOUS
        key = x_api_key
        if key is None and authorization and authorization.lower().startswith("bearer "):
            key = authorization[7:].strip()
        if not key:
            raise AuthError(f"an API key is required: send it in the {HEADER} header")
        digest = hashlib.sha256(key.encode()).digest()
        matched = False
        for candidate in self._digests:  # compare with every key so timing reveals nothing
            matched |= hmac.compare_digest(digest, candidate)
        if not matched:
            raise AuthError("invalid API key")
        return fingerprint(key)
