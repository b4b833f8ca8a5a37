"""rtsam.client against a real loopback server: same results as in-process, errors, retries."""

import socket
import time

import numpy as np
import pytest
from server_helpers import KEY, cpu_engine, live_server, lung_crop

from rtsam.client import RemoteEngine, RemoteError, RemoteSession, open_session
from rtsam.client import transport
from rtsam.engines.base import Click, Prompt
from rtsam.session import Session


@pytest.fixture(scope="module")
def server():
    with live_server(api_keys=[KEY]) as (url, app):
        yield url, app


def test_remote_engine_equals_in_process_engine_bit_for_bit(server):
    url, app = server
    image, box = lung_crop()
    refine = Prompt(box_lps=box, clicks=[Click(tuple(image.ijk_to_lps([60, 50, 0])), positive=False)])
    local_context = cpu_engine().open(image)
    local = [local_context.predict(Prompt(box_lps=box))]
    local.append(local_context.predict(refine, previous=local[0]))
    remote_context = RemoteEngine(url, api_key=KEY).open(image)
    remote = [remote_context.predict(Prompt(box_lps=box))]
    remote.append(remote_context.predict(refine, previous=remote[0]))
    for ours, theirs in zip(local, remote):
        assert np.array_equal(ours.mask.array, theirs.mask.array)
        assert np.array_equal(ours.probability.array, theirs.probability.array)
        assert theirs.mask.same_grid(image, atol=0)
        assert (theirs.quality, theirs.engine, theirs.weights) == (ours.quality, ours.engine, ours.weights)
    assert "embed_ms" not in remote[1].timings_ms  # the click re-used the server's cached embeddings

    app.state.store.close(app.state.keys.owner(KEY, None), remote_context.session_id)
    again = remote_context.predict(Prompt(box_lps=box))  # the server forgot the session: re-upload
    assert np.array_equal(again.mask.array, local[0].mask.array)
    remote_context.close()


def test_remote_session_has_the_session_api_and_matches_it(server):
    url, _ = server
    image, box = lung_crop()
    engine = RemoteEngine(url, api_key=KEY)
    remote, local = open_session(image, engine), open_session(image, cpu_engine())
    assert isinstance(remote, RemoteSession) and type(local) is Session
    for session in (remote, local):
        session.set_box(box)
        session.predict()
        session.add_click(image.ijk_to_lps([30, 40, 1]))
        session.predict()
        assert session.undo() and not session.prompt.clicks
    assert np.array_equal(remote.result.mask.array, local.result.mask.array)
    remote.close()


def test_connection_info_and_clear_errors(server, monkeypatch):
    url, _ = server
    info = RemoteEngine(url, api_key=KEY).test_connection()
    assert info["engine"] == "litemedsam" and info["auth_required"] is True and info["api"] == 1
    with pytest.raises(RemoteError, match="401: invalid API key"):
        RemoteEngine(url, api_key="a-wrong-key-0123456789").test_connection()
    monkeypatch.setattr(transport, "API_VERSION", 2)
    with pytest.raises(RemoteError, match=r"version mismatch: .* \(API 1\) but this client .* \(API 2\)"):
        RemoteEngine(url, api_key=KEY).test_connection()


def test_unreachable_server_is_retried_with_backoff_then_reported():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens on this port now
    engine = RemoteEngine(f"http://127.0.0.1:{port}", retries=2, backoff=0.1, timeout=2)
    start = time.monotonic()
    with pytest.raises(RemoteError, match="cannot reach the rtsam server"):
        engine.test_connection()
    assert time.monotonic() - start >= 0.1 + 0.2
