"""A request sent again with the same Idempotency-Key (a retry after a lost connection) is answered,
not applied twice: real loopback server, real engine."""

import httpx
import numpy as np
from server_helpers import FRAME, KEY, OTHER_KEY, client, live_server, lung_crop

from rtsam.client.transport import Transport
from rtsam.server import IDEMPOTENCY_HEADER, wire


def click(http, sid, lps, key):
    return http.post(f"/v1/sessions/{sid}/clicks", json={"lps": lps}, headers={IDEMPOTENCY_HEADER: key})


def test_a_repeated_click_or_upload_is_answered_once_and_applied_once():
    image, box = lung_crop()
    body = wire.encode_volumes({"image": image})
    lps = np.mean(box, axis=0).tolist()
    with live_server(api_keys=[KEY, OTHER_KEY]) as (url, app), client(url) as alice, client(url, OTHER_KEY) as bob:
        first = alice.post("/v1/sessions", content=body, headers={**FRAME, IDEMPOTENCY_HEADER: "upload-1"})
        again = alice.post("/v1/sessions", content=body, headers={**FRAME, IDEMPOTENCY_HEADER: "upload-1"})
        assert first.status_code == again.status_code == 201
        sid = first.json()["session_id"]
        assert again.json()["session_id"] == sid and len(app.state.store) == 1
        one = click(alice, sid, lps, "click-1")
        repeat = click(alice, sid, lps, "click-1")
        assert one.status_code == repeat.status_code == 200 and repeat.json() == one.json()
        assert len(repeat.json()["prompt"]["clicks"]) == 1
        assert len(click(alice, sid, lps, "click-2").json()["prompt"]["clicks"]) == 2  # a new action
        # another key presenting the same idempotency key gets no kept answer: the session is not theirs
        assert click(bob, sid, lps, "click-1").status_code == 404
        assert len(alice.get(f"/v1/sessions/{sid}/prompt").json()["prompt"]["clicks"]) == 2


class DropsFirstAnswer(httpx.BaseTransport):
    """Delivers each request, but loses the answer to the first one on ``path`` (a reset after the
    server applied it)."""

    def __init__(self, inner: httpx.BaseTransport, path: str):
        self.inner, self.path, self.dropped = inner, path, 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if request.url.path == self.path and not self.dropped:
            response.read()
            self.dropped += 1
            raise httpx.ReadError("connection reset by peer", request=request)
        return response


def test_the_client_sends_a_click_again_after_a_lost_answer_and_it_counts_once():
    image, box = lung_crop()
    with live_server(api_keys=[KEY]) as (url, app):
        transport = Transport(url, KEY, retries=2, backoff=0.01)
        try:
            sid = transport.request("POST", "/v1/sessions", content=wire.encode_volumes({"image": image}),
                                    idempotent=False, headers=FRAME).json()["session_id"]
            path = f"/v1/sessions/{sid}/clicks"
            transport.client._transport = lossy = DropsFirstAnswer(transport.client._transport, path)
            state = transport.request("POST", path, idempotent=False, json={"lps": np.mean(box, axis=0).tolist()})
            assert lossy.dropped == 1 and len(state.json()["prompt"]["clicks"]) == 1
            assert len(transport.request("GET", f"/v1/sessions/{sid}/prompt").json()["prompt"]["clicks"]) == 1
        finally:
            transport.close()
