"""The example data: real scans and an RT case from two PyPI sdists (``rtsam examples fetch``)."""

from .fetch import FetchError, cache_dir, fetch_examples, manifest, stale_files

__all__ = ["FetchError", "cache_dir", "fetch_examples", "manifest", "stale_files"]
