"""Limits per API key over a sliding minute: requests, and megabytes uploaded (429 past them).

Checked right after authentication, before a request touches any session, so a refused
request changes nothing. The open sessions per key are limited by ``SessionStore``.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque
from typing import Callable

from .sessions import StoreError

WINDOW_S = 60.0


class RateLimited(StoreError):
    status = 429


class _Window:
    """Amounts spent in the last minute by one key."""

    def __init__(self):
        self.spent: deque[tuple[float, float]] = deque()
        self.total = 0.0

    def trim(self, now: float) -> None:
        while self.spent and self.spent[0][0] <= now - WINDOW_S:
            self.total -= self.spent.popleft()[1]

    def retry_after(self, now: float, amount: float, limit: float) -> float:
        """Seconds until ``amount`` more fits under ``limit``."""
        freed = 0.0
        for when, spent in self.spent:
            freed += spent
            if self.total - freed + amount <= limit:
                return max(1.0, when + WINDOW_S - now)
        return WINDOW_S


class KeyLimits:
    """``requests_per_minute`` and ``upload_mb_per_minute`` per key; 0 or None: unlimited."""

    def __init__(self, requests_per_minute: int | None, upload_mb_per_minute: float | None,
                 clock: Callable[[], float] = time.monotonic):
        self.requests_per_minute = requests_per_minute or None
        self.upload_bytes_per_minute = upload_mb_per_minute * 2**20 if upload_mb_per_minute else None
        self.clock = clock
        self._requests: dict[str, _Window] = defaultdict(_Window)
        self._uploads: dict[str, _Window] = defaultdict(_Window)
        self._lock = threading.Lock()

    def charge_request(self, owner: str) -> None:
        if self.requests_per_minute:
            self._charge(self._requests[owner], 1.0, self.requests_per_minute,
                         f"this API key sent {self.requests_per_minute} requests in the last minute (limit "
                         f"{self.requests_per_minute}, --key-requests-per-minute)")

    def check_upload(self, owner: str, size: int) -> None:
        """Refuse an upload of ``size`` bytes that would pass the key's budget (nothing charged)."""
        if self.upload_bytes_per_minute:
            self._charge(self._uploads[owner], float(size), self.upload_bytes_per_minute, self._upload_message(size),
                         spend=False)

    def charge_upload(self, owner: str, size: int) -> None:
        if self.upload_bytes_per_minute:
            self._charge(self._uploads[owner], float(size), self.upload_bytes_per_minute, self._upload_message(size))

    def _upload_message(self, size: int) -> str:
        return (f"this upload ({size / 2**20:.1f} MiB) would pass the key's upload limit of "
                f"{self.upload_bytes_per_minute / 2**20:g} MiB per minute (--key-upload-mb-per-minute)")

    def _charge(self, window: _Window, amount: float, limit: float, message: str, spend: bool = True) -> None:
        with self._lock:
            now = self.clock()
            window.trim(now)
            if amount > limit:
                raise RateLimited(message)  # can never fit: no Retry-After
            if window.total + amount > limit:
                retry = window.retry_after(now, amount, limit)
                error = RateLimited(f"{message}; retry in {retry:.0f} s")
                error.retry_after = retry
                raise error
            if spend:
                window.spent.append((now, amount))
                window.total += amount
