"""Property-based fuzzing of every endpoint of the OpenAPI schema (hypothesis strategies from its schemas).

Requests are drawn from each operation's schema (valid bodies) and beside it (junk JSON, broken
frames, odd headers), with the right key, another key, a wrong key or none, on a real session,
another key's session or an unknown id. Whatever comes: no 5xx (but the overload answer 503 with
Retry-After), no traceback in a body, one line of error, and a refused request changes no session.
"""

import json
from collections import Counter
from urllib.parse import quote

import numpy as np
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from server_helpers import KEY, OTHER_KEY, lung_crop, make_app

from rtsam.server import wire
from rtsam.volume import Volume

WRONG_KEY = "wrong-key-0123456789abcdef"
NO_KEY_NEEDED = {"/v1/version"}
HEADER_TEXT = st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=12)
JUNK_JSON = st.recursive(st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=8),
                         lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8),
                                                                                            children, max_size=4),
                         max_leaves=12)


def from_schema(schema: dict, components: dict):
    """Values valid for an OpenAPI schema (the subset the app's schema uses); numbers often inside the image."""
    if "$ref" in schema:
        return from_schema(components["schemas"][schema["$ref"].rsplit("/", 1)[-1]], components)
    if "anyOf" in schema:
        return st.one_of([from_schema(s, components) for s in schema["anyOf"]])
    kind = schema.get("type")
    if kind == "object":
        properties = {k: from_schema(v, components) for k, v in schema.get("properties", {}).items()}
        required = set(schema.get("required", []))
        return st.fixed_dictionaries({k: v for k, v in properties.items() if k in required},
                                     optional={k: v for k, v in properties.items() if k not in required})
    if kind == "array":
        low = schema.get("minItems", 0)
        return st.lists(from_schema(schema.get("items", {}), components), min_size=low,
                        max_size=min(schema.get("maxItems", low + 4), low + 4))
    simple = {"number": st.floats(-5, 30) | st.floats(), "integer": st.integers(-3, 3) | st.integers(),
              "boolean": st.booleans(), "null": st.none(),
              "string": st.text(max_size=min(schema.get("maxLength", 20), 20))}
    return simple.get(kind, JUNK_JSON)


class Server:
    """The app with one session of ``KEY`` and one of ``OTHER_KEY``, re-opened when a request closed them."""

    def __init__(self, app, http):
        self.app, self.http = app, http
        self.image = Volume(lung_crop()[0].array[:, :24, :24].copy(), spacing=(0.7, 0.7, 2.5))
        self.ids: dict[str, str] = {}

    def session_id(self, which: str) -> str:
        key = {"mine": KEY, "theirs": OTHER_KEY}[which]
        store, owner = self.app.state.store, self.app.state.keys.owner(key, None)
        if self.ids.get(which) not in store.state():
            self.ids[which] = store.create(owner, self.image).id
        return self.ids[which]

    def reset(self) -> None:
        """Close every session but the two tracked ones (fuzzed uploads would fill the store), open those."""
        store = self.app.state.store
        for sid, state in store.state().items():
            if sid not in self.ids.values():
                store.close(state["owner"], sid)
        self.session_id("mine"), self.session_id("theirs")

    def state(self) -> tuple:
        jobs = self.app.state.jobs.jobs
        return self.app.state.store.state(), {j.id: j.state for j in jobs.values()}


@pytest.fixture(scope="module")
def server():
    app = make_app(api_keys=[KEY, OTHER_KEY], max_sessions=8, key_requests_per_minute=0, key_upload_mb_per_minute=0)
    with TestClient(app, raise_server_exceptions=False) as http:
        yield Server(app, http)


def frames(image: Volume):
    """Valid frames and broken ones: NaN voxels, a wrong dtype, truncation, flipped bytes, random bytes."""
    valid = wire.encode_volumes({"image": image})
    nan = image.array.astype(np.float32)
    nan[0, 0, 0] = np.nan
    header = json.dumps({"arrays": [{"name": "image", "dtype": "<c8", "shape": [2, 2, 2], "compressed_bytes": 0}]})
    wrong_dtype = wire.MAGIC + len(header).to_bytes(4, "little") + header.encode()
    cut = st.integers(0, len(valid)).map(lambda n: valid[:n])
    flip = st.tuples(st.integers(0, len(valid) - 1), st.integers(1, 255)).map(
        lambda f: valid[:f[0]] + bytes([valid[f[0]] ^ f[1]]) + valid[f[0] + 1:])
    return st.one_of(st.just(valid), st.just(wire.encode_volumes({"image": image.with_array(nan)})),
                     st.just(wrong_dtype), cut, flip, st.binary(max_size=256))


def operation_requests(schema: dict, image: Volume):
    """One strategy per (method, path) of the schema, drawing path, query, headers and body."""
    components = schema.get("components", {})
    strategies = []
    for path, item in schema["paths"].items():
        for method, op in item.items():
            parameters = {}
            for param in op.get("parameters", []):
                value = from_schema(param.get("schema", {}), components) | JUNK_JSON
                if param["name"] in ("session_id", "job_id"):
                    value = st.sampled_from(["mine", "mine", "mine", "theirs"]) | st.text(min_size=1, max_size=30)
                parameters[(param["in"], param["name"])] = value if param.get("required") else st.none() | value
            content = op.get("requestBody", {}).get("content", {})
            if "application/json" in content:
                body = st.tuples(st.just("json"), from_schema(content["application/json"]["schema"], components)
                                 | JUNK_JSON)
            elif wire.CONTENT_TYPE in content:
                body = st.tuples(st.just("frame"), frames(image))
            else:
                body = st.just(None)
            strategies.append(st.fixed_dictionaries({
                "method": st.just(method.upper()), "path": st.just(path), "body": body,
                "parameters": st.fixed_dictionaries(parameters),
                "key": st.sampled_from([KEY, OTHER_KEY, WRONG_KEY, None])}))
    return st.one_of(strategies)


def send(server: Server, request: dict):
    path, query, headers = request["path"], {}, {}
    for (where, name), value in request["parameters"].items():
        if value is None:
            continue
        if where == "path":
            value = server.session_id(value) if value in ("mine", "theirs") else value
            path = path.replace("{" + name + "}", quote(str(value), safe="") or "x")
        elif where == "query":
            query[name] = json.dumps(value) if isinstance(value, (dict, list)) else str(value)
        elif where == "header":
            headers[name] = "".join(c for c in str(value) if 32 < ord(c) < 127)[:40] or "x"
    if request["key"]:
        headers["X-API-Key"] = request["key"]
    kind, body = request["body"] or (None, None)
    if kind == "json":  # json.dumps also writes NaN and Infinity, which httpx refuses to send
        headers["Content-Type"] = "application/json"
        return server.http.request(request["method"], path, params=query, headers=headers, content=json.dumps(body))
    if kind == "frame":
        headers["Content-Type"] = wire.CONTENT_TYPE
        return server.http.request(request["method"], path, params=query, headers=headers, content=body)
    return server.http.request(request["method"], path, params=query, headers=headers)


def test_every_endpoint_survives_fuzzing_with_and_without_the_key(server):
    schema = server.app.openapi()
    answered = Counter()

    @settings(max_examples=300, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
    @given(request=operation_requests(schema, server.image))
    def check(request):
        server.reset()
        before = server.state()
        response = send(server, request)
        answered[request["method"], request["path"], response.status_code] += 1
        where = f"{request['method']} {request['path']} -> {response.status_code}: {response.text[:300]}"
        assert response.status_code < 500 or (response.status_code == 503 and "Retry-After" in response.headers), where
        assert "Traceback" not in response.text and 'File "' not in response.text, where
        if response.status_code >= 400:
            detail = response.json()["detail"]
            assert isinstance(detail, str) and "\n" not in detail and detail, where
            assert server.state() == before, f"refused request changed state: {where}"
        if request["key"] in (None, WRONG_KEY) and request["path"] not in NO_KEY_NEEDED:
            unrouted = response.json()["detail"] in ("Not Found", "Method Not Allowed")  # e.g. an id with a '/'
            assert response.status_code == 401 or unrouted, where

    check()
    print(sorted(answered.items()))
    ok = {(method, path) for method, path, status in answered if status < 300}
    assert {("PUT", "/v1/sessions/{session_id}/box"), ("POST", "/v1/sessions/{session_id}/clicks")} <= ok
    assert {status for *_, status in answered} >= {200, 401, 404, 422}
