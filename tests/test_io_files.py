"""Atomic file output (rtsam.io.files)."""

import os
import stat

import pytest

from rtsam.io.files import write_atomically

def test_written_file_follows_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        path = write_atomically(tmp_path / "a.txt", lambda temp: open(temp, "w").write("x"))
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644 and path.read_text() == "x"


def test_a_failed_write_leaves_nothing(tmp_path):
    def fail(temp):
        open(temp, "w").write("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomically(tmp_path / "b.txt", fail)
    assert list(tmp_path.iterdir()) == []
