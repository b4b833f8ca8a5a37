"""The local server launcher (rtsam.client.local_process): a failing start reports the server's own
log, and the API key never appears on the command line. The working path is covered end to end by
tests/test_slicer_rtinjurysam.py and tests/test_slicer_itv4dct.py (the logics' default backend)."""

import os
import stat

import pytest

from rtsam.client.local_process import LocalServer, LocalServerError


def test_a_server_that_cannot_start_reports_its_log(tmp_path):
    server = LocalServer("no-such-engine", log_dir=tmp_path)
    with pytest.raises(LocalServerError, match="stopped while starting(.|\\n)*no-such-engine"):
        server.wait_ready(timeout=300)
    assert not server.running and server.log_path.parent == tmp_path
    server.stop()


def test_the_api_key_stays_off_the_command_line(tmp_path):
    server = LocalServer("litemedsam", log_dir=tmp_path)
    command = server.command()
    assert server.api_key not in " ".join(command) and len(server.api_key) >= 40
    key_file = command[command.index("--api-key-file") + 1]
    assert open(key_file).read().strip() == server.api_key
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    assert command[command.index("--host") + 1] == "127.0.0.1" and command[command.index("--port") + 1] == "0"
    server.stop()
