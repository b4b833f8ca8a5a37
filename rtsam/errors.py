"""Errors that reach users: one clear line naming the file and the problem."""

from __future__ import annotations

from pathlib import Path


class RTSAMError(Exception):
    """An input or usage problem; the CLI prints it as one line and exits 2."""

    def __init__(self, message: str, path: str | Path | None = None):
        self.path = str(path) if path is not None else None
        super().__init__(f"{self.path}: {message}" if self.path else message)


class InputError(RTSAMError):
    """A file or value given by the user cannot be used as asked."""


class GeometryError(InputError):
    """Grids that do not overlap, differing frames of reference, points outside an image."""


class CancelledError(RTSAMError):
    """A long step was cancelled by the user."""


class PACSError(RTSAMError):
    """A PACS or DICOMweb server cannot be reached, refuses, times out or lacks what was asked."""
