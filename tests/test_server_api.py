"""The HTTP API on a real uvicorn server (127.0.0.1, free port): errors, auth, isolation, sessions."""

import logging
import resource
import socket
import struct
import time

import httpx
import numpy as np
import pytest
from server_helpers import FRAME, KEY, OTHER_KEY, client, cpu_engine, live_server, lung_crop

from rtsam.server import API_VERSION, wire
from rtsam.session import Session
from rtsam.volume import Volume


@pytest.fixture(scope="module")
def server():
    with live_server(api_keys=[KEY, OTHER_KEY], max_sessions=4, max_upload_mb=1.0) as (url, app):
        yield url, app


def upload(http, image):
    return http.post("/v1/sessions", content=wire.encode_volumes({"image": image}), headers=FRAME)


def test_openapi_schema_and_version_handshake(server):
    url, _ = server
    with client(url, key=None) as http:
        paths = http.get("/openapi.json").json()["paths"]
        assert {"/v1/sessions", "/v1/sessions/{session_id}/predict", "/v1/sessions/{session_id}/undo"} <= set(paths)
        assert http.get("/v1/version").json()["api"] == API_VERSION
        assert http.get("/v1/version", headers={"X-RTSAM-API": "99"}).status_code == 200  # handshake always answers
        mismatch = http.get("/v1/info", headers={"X-RTSAM-API": "99", "X-API-Key": KEY})
        assert mismatch.status_code == 426 and "speaks API 1" in mismatch.json()["detail"]
        info = http.get("/v1/info", headers={"X-API-Key": KEY}).json()
        assert (info["device"], info["gpu"]) == ("cpu", None)


def test_bad_requests_get_4xx_with_a_message_and_the_server_keeps_serving(server, caplog):
    url, app = server
    caplog.set_level(logging.DEBUG)
    image, _ = lung_crop()
    with client(url) as http, client(url, key="wrong-key-0123456789") as wrong, client(url, key=None) as anonymous:
        sid = upload(http, image).json()["session_id"]
        flat = wire.encode(wire.Frame({"image": np.zeros((4, 4), np.int16)}, {"image": wire.geometry_of(image)}))
        huge = wire.encode_volumes({"image": Volume(np.random.default_rng(0).random((20, 128, 128)))})
        cases = [
            (wrong.get("/v1/info"), 401, "invalid API key"),
            (anonymous.get("/v1/info"), 401, "X-API-Key"),
            (http.post("/v1/sessions", content=b"not a frame", headers=FRAME), 400, "not an rtsam frame"),
            (http.post("/v1/sessions", content=flat, headers=FRAME), 400, "3D"),
            (http.post("/v1/sessions", content=huge, headers=FRAME), 413, "--max-upload-mb"),
            (http.post(f"/v1/sessions/{sid}/predict", content=b"{bad json", headers={"Content-Type": "application/json"}),
             422, "JSON"),
            (http.post(f"/v1/sessions/{sid}/clicks", json={"lps": [1, 2]}), 422, "lps"),
            (http.post(f"/v1/sessions/{sid}/clicks", json={"lps": [1e4, 0, 0]}), 400, "outside the image"),
            (http.post(f"/v1/sessions/{sid}/predict", json={"previous": "nope"}), 400, "recent results"),
            (http.delete(f"/v1/sessions/{sid}/clicks/3"), 400, "no click 3"),
            (http.get("/v1/sessions/doesnotexist"), 404, "unknown session"),
        ]
        for response, status, message in cases:
            assert response.status_code == status, response.text
            assert message in response.json()["detail"]
        assert http.get(f"/v1/sessions/{sid}").json()["shape"] == list(image.array.shape)
        assert http.delete(f"/v1/sessions/{sid}").status_code == 204
    assert KEY not in caplog.text and "wrong-key-0123456789" not in caplog.text


def test_sessions_are_isolated_between_keys(server):
    url, _ = server
    image, _ = lung_crop()
    with client(url) as alice, client(url, OTHER_KEY) as bob:
        sid = upload(alice, image).json()["session_id"]
        for response in [bob.get(f"/v1/sessions/{sid}"), bob.post(f"/v1/sessions/{sid}/clicks", json={"lps": [0, 0, 0]}),
                         bob.post(f"/v1/sessions/{sid}/segment", json={}), bob.delete(f"/v1/sessions/{sid}")]:
            assert response.status_code == 404 and "unknown session" in response.json()["detail"]
        assert alice.get(f"/v1/sessions/{sid}/prompt").json()["prompt"]["clicks"] == []
        alice.delete(f"/v1/sessions/{sid}")


def test_full_server_refuses_with_503_and_a_clear_message(server):
    url, app = server
    image, _ = lung_crop()
    with client(url) as http:
        opened = [upload(http, image) for _ in range(app.state.config.max_sessions - len(app.state.store))]
        refused = upload(http, image)
        assert refused.status_code == 503 and "server is full" in refused.json()["detail"]
        assert refused.headers["Retry-After"]
        for response in opened:
            http.delete(f"/v1/sessions/{response.json()['session_id']}")
        assert upload(http, image).status_code == 201


def test_server_side_session_equals_in_process_session_bit_for_bit(server):
    url, _ = server
    image, box = lung_crop()
    click = image.ijk_to_lps([60, 50, 1]).tolist()
    local = Session(image, cpu_engine())
    local.set_box(box)
    first = local.predict()
    local.add_click(click, positive=False)
    second = local.predict()
    with client(url) as http:
        sid = upload(http, image).json()["session_id"]
        http.put(f"/v1/sessions/{sid}/box", json={"box_lps": box.tolist()})
        remote_first = wire.decode(http.post(f"/v1/sessions/{sid}/segment", json={}).content)
        state = http.post(f"/v1/sessions/{sid}/clicks", json={"lps": click, "positive": False}).json()
        assert state["can_undo"] and state["prompt"]["clicks"][0]["positive"] is False
        remote_second = wire.decode(http.post(f"/v1/sessions/{sid}/segment", json={}).content)
        undone = http.post(f"/v1/sessions/{sid}/undo").json()
        assert undone["prompt"]["clicks"] == [] and undone["can_redo"]
        after_undo = wire.decode(http.get(f"/v1/sessions/{sid}/result").content)
    for remote, ours in [(remote_first, first), (remote_second, second), (after_undo, first)]:
        assert np.array_equal(remote.arrays["mask"], ours.mask.array)
        assert np.array_equal(remote.arrays["probability"], ours.probability.array)
        assert remote.meta["quality"] == ours.quality and remote.meta["weights"] == ours.weights
        assert remote.volume("mask").same_grid(image, atol=0)


def test_idle_sessions_are_closed_by_the_server_and_report_it():
    image, _ = lung_crop()
    with live_server(idle_timeout=0.5) as (url, app), client(url, key=None) as http:
        sid = upload(http, image).json()["session_id"]
        deadline = time.monotonic() + 10
        while len(app.state.store) and time.monotonic() < deadline:
            time.sleep(0.1)
        gone = http.get(f"/v1/sessions/{sid}")
        assert gone.status_code == 410 and "idle" in gone.json()["detail"]


def raw_post(url: str, path: str, headers: dict, body: bytes) -> tuple[int, str]:
    """POST through a bare socket (to declare a body larger than what is sent); returns status and body."""
    address = httpx.URL(url)
    lines = [f"POST {path} HTTP/1.1", f"Host: {address.host}", *(f"{k}: {v}" for k, v in headers.items()), "", ""]
    with socket.create_connection((address.host, address.port), timeout=60) as sock:
        sock.sendall("\r\n".join(lines).encode() + body)
        answer = b""
        while b"\r\n\r\n" not in answer or len(answer.split(b"\r\n\r\n", 1)[1]) < _length(answer):
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    head, _, content = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), content.decode()


def _length(answer: bytes) -> int:
    for line in answer.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":")[1])
    return 1 << 30


def test_hostile_uploads_get_one_clear_line_and_leave_other_sessions_alone(server):
    url, app = server
    image, box = lung_crop()
    nan = image.array.astype(np.float32)
    nan[1, 5, 5] = np.nan
    header = b'{"arrays": [{"name": "image", "dtype": "<c8", "shape": [2, 4, 4], "compressed_bytes": 0}]}'
    complex_frame = wire.MAGIC + struct.pack("<I", len(header)) + header
    with client(url) as http:
        sid = upload(http, image).json()["session_id"]
        http.put(f"/v1/sessions/{sid}/box", json={"box_lps": box.tolist()})
        shown = wire.decode(http.post(f"/v1/sessions/{sid}/segment", json={}).content)
        before = app.state.store.state()
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        start = time.monotonic()
        status, body = raw_post(url, "/v1/sessions", {"X-API-Key": KEY, "Content-Type": wire.CONTENT_TYPE,
                                                      "Content-Length": str(2 << 30)}, b"RTSAM" * 1000)
        assert status == 413 and "larger than the server limit of 1 MiB" in body
        assert time.monotonic() - start < 10 and resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak < 50_000
        streamed = http.post("/v1/sessions", content=iter([bytes(256 << 10)] * 8), headers=FRAME)  # chunked, 2 MiB
        cases = [
            (streamed, 413, "--max-upload-mb"),
            (http.post("/v1/sessions", content=complex_frame, headers=FRAME), 400, "dtype <c8 is not one of"),
            (http.post("/v1/sessions", content=wire.encode_volumes({"image": image.with_array(nan)}), headers=FRAME),
             400, "1 non-finite voxels"),
            (http.post(f"/v1/sessions/{sid}/clicks", json={"lps": ["a", 0, 0]}), 422, "lps"),
            (http.post(f"/v1/sessions/{sid}/clicks", json={"lps": [0, 0, 1e300]}), 400, "outside the image"),
            (http.put(f"/v1/sessions/{sid}/box", json={"box_lps": [[0, 0, 0], [0, 0, 0]]}), 400, "zero size"),
            (http.post(f"/v1/sessions/{sid}/segment", json={}, headers={"X-RTSAM-Deadline": "nan"}), 422,
             "x-rtsam-deadline"),
            (http.get("/v1/sessions/" + "x" * 5000), 404, "unknown session"),
        ]
        for response, status, message in cases:
            assert response.status_code == status, response.text
            detail = response.json()["detail"]
            assert message in detail and "\n" not in detail and "Traceback" not in detail
        assert app.state.store.state() == before  # nothing refused changed a session
        after = wire.decode(http.get(f"/v1/sessions/{sid}/result").content)
        for name in ("mask", "probability"):  # the other session is untouched
            assert np.array_equal(after.arrays[name], shown.arrays[name])
        http.delete(f"/v1/sessions/{sid}")
