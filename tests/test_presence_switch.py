"""Object presence chosen per session on a real server (litemedsam, its own setting off): brain1's MR with a
box 10 mm around its first lesion component (slices 11-12), so the box also spans margin slices 10 and 13."""

import numpy as np
import pytest
from scipy import ndimage
from server_helpers import FRAME, KEY, client, live_server

from rtsam.benchmark_interactive import box_from_label
from rtsam.client import RemoteEngine, open_session
from rtsam.errors import InputError
from rtsam.io import read_image
from rtsam.server import wire

LESION, LOOSE = [11, 12], [10, 11, 12, 13]  # slices with a mask: presence on, presence off


@pytest.fixture(scope="module")
def case(data):
    image = read_image(data / "pyradiomics/brain1_image.nrrd")
    components, _ = ndimage.label(read_image(data / "pyradiomics/brain1_label.nrrd").array > 0)
    return image, box_from_label(image.with_array((components == 1).astype(np.uint8)), 10.0)


@pytest.fixture(scope="module")
def server():
    with live_server(api_keys=[KEY]) as (url, app):
        yield url


def painted(mask: np.ndarray) -> list[int]:
    return [k for k in range(mask.shape[0]) if mask[k].any()]


def upload(http, image) -> str:
    return http.post("/v1/sessions", content=wire.encode_volumes({"image": image}), headers=FRAME).json()["session_id"]


def segment(http, sid: str) -> np.ndarray:
    return wire.decode(http.post(f"/v1/sessions/{sid}/segment", json={"probability": False}).content).arrays["mask"]


def test_presence_is_a_per_session_choice_and_a_toggle_predicts_again(server, case):
    """The Python client's session asks for "on", an HTTP session for "off" on the same image; toggling the
    second to "on" gives the first's mask bit for bit (no slice kept from the "off" result), undo brings back
    the "off" prompt and result."""
    image, box = case
    remote = open_session(image, RemoteEngine(server, api_key=KEY))
    remote.set_box(box)
    remote.set_presence("on")
    on = remote.predict().mask.array
    with client(server) as http:
        assert http.get("/v1/info").json()["presence"] == "off"  # the engine's own setting
        sid = upload(http, image)
        http.put(f"/v1/sessions/{sid}/box", json={"box_lps": box.tolist()})
        state = http.put(f"/v1/sessions/{sid}/presence", json={"presence": "off"}).json()
        assert state["prompt"]["presence"] == "off" and state["can_undo"]
        off = segment(http, sid)
        assert http.put(f"/v1/sessions/{sid}/presence", json={"presence": "on"}).json()["prompt"]["presence"] == "on"
        toggled = segment(http, sid)
        assert http.post(f"/v1/sessions/{sid}/undo").json()["prompt"]["presence"] == "off"
        after_undo = wire.decode(http.get(f"/v1/sessions/{sid}/result").content).arrays["mask"]
    assert painted(on) == LESION and painted(off) == LOOSE
    assert np.array_equal(toggled, on) and np.array_equal(after_undo, off)
    with pytest.raises(InputError, match="presence must be 'on', 'off' or None"):
        remote.set_presence("yes")
    remote.close()


def test_a_bad_presence_is_refused_with_a_clear_message(server, case):
    image, box = case
    with client(server) as http:
        sid = upload(http, image)
        presence, predict = f"/v1/sessions/{sid}/presence", f"/v1/sessions/{sid}/predict"
        cases = [(http.put(presence, json={"presence": "maybe"}), "body.presence: Input should be 'on' or 'off'"),
                 (http.put(presence, json={}), "body.presence: Field required"),
                 (http.post(predict, json={"prompt": {"box_lps": box.tolist(), "presence": 1}}),
                  "body.prompt.presence: Input should be 'on' or 'off'")]
        for response, message in cases:
            assert response.status_code == 422 and message in response.json()["detail"], response.text
        prompt = http.get(f"/v1/sessions/{sid}/prompt").json()
        assert prompt["prompt"]["presence"] is None and not prompt["can_undo"]  # nothing changed
        http.delete(f"/v1/sessions/{sid}")


def test_the_registry_flags_exactly_the_engines_whose_class_takes_a_presence_rule():
    """``has_presence_rule`` (which RTInjurySAM's checkbox follows) agrees with the engine classes."""
    import importlib
    import inspect

    from rtsam.engines.registry import DEFAULT_ENGINE, has_presence_rule, registry

    for name, entry in registry().items():
        module, _, cls = entry["class"].partition(":")
        takes_rule = "presence" in inspect.signature(getattr(importlib.import_module(module), cls)).parameters
        assert has_presence_rule(name) == takes_rule, name
    assert has_presence_rule(None) == has_presence_rule(DEFAULT_ENGINE) and not has_presence_rule("nonexistent")
