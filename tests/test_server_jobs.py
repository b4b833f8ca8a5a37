"""ITV background jobs on a real loopback server: same ITV as in-process, progress, cancel."""

import time

import numpy as np
import pytest
from server_helpers import FRAME, KEY, OTHER_KEY, cpu_engine, live_server, lung_crop_with_mask

from rtsam.client import RemoteEngine, RemoteError, run_remote_itv
from rtsam.errors import CancelledError
from rtsam.itv.generator import make_4dct
from rtsam.itv.phases import make_phases
from rtsam.itv.pipeline import run_itv
from rtsam.server import wire


@pytest.fixture(scope="module")
def phases():
    image, mask, _ = lung_crop_with_mask()
    generated = make_4dct(image, mask, phases=2, amplitude_si_mm=2.0, amplitude_ap_mm=2.0, fade_mm=10.0)
    return make_phases(generated.phases, [0.0, 50.0], "lung2 crop"), generated.phase_masks[0]


def test_remote_itv_job_equals_in_process_itv(phases):
    phases, init_mask = phases
    local = run_itv(phases, init_mask=init_mask, engine=cpu_engine(), window=1)
    seen = []
    with live_server(api_keys=[KEY, OTHER_KEY], max_jobs=1) as (url, _):
        engine = RemoteEngine(url, api_key=KEY)
        remote = run_remote_itv(engine, phases, init_mask=init_mask, window=1, poll_s=0.05,
                                progress=lambda f, m: seen.append(f))
    assert np.array_equal(remote.itv.array, local.itv.array) and remote.itv.same_grid(local.itv, atol=0)
    assert all(np.array_equal(a.array, b.array) for a, b in zip(remote.phase_masks, local.phase_masks))
    assert remote.report.keys() == local.report.keys()
    assert seen and all(0 <= f <= 1 for f in seen)


def test_running_and_queued_jobs_cancel_and_belong_to_their_key(phases):
    phases, init_mask = phases
    volumes = {f"phase_{n}": v for n, v in enumerate(phases.volumes)} | {"init_mask": init_mask}
    slow = {"propagation": "engine"}  # the engine on every phase: long enough to catch running
    body = wire.encode_volumes(volumes, {"values": phases.values, "options": slow})
    with live_server(api_keys=[KEY, OTHER_KEY], max_jobs=1) as (url, _):
        mine, theirs = RemoteEngine(url, api_key=KEY).transport, RemoteEngine(url, api_key=OTHER_KEY).transport
        submit = lambda: mine.request("POST", "/v1/jobs/itv", content=body, headers=FRAME)
        running, queued = submit().json()["job_id"], submit().json()["job_id"]  # one worker: the second waits
        for method in ("GET", "DELETE"):
            with pytest.raises(RemoteError, match="404: unknown job"):
                theirs.request(method, f"/v1/jobs/{running}")
        with pytest.raises(RemoteError, match="400: job .* is (queued|running)"):
            mine.request("GET", f"/v1/jobs/{running}/result")
        for job in (queued, running):
            mine.request("DELETE", f"/v1/jobs/{job}")
        states = {}
        deadline = time.monotonic() + 120
        while len(states) < 2 and time.monotonic() < deadline:
            for job in (running, queued):
                state = mine.request("GET", f"/v1/jobs/{job}").json()["state"]
                if state not in ("queued", "running"):
                    states[job] = state
            time.sleep(0.05)
        assert states == {running: "cancelled", queued: "cancelled"}
        with pytest.raises(CancelledError, match="409: job .* is cancelled"):
            mine.request("GET", f"/v1/jobs/{queued}/result")


def test_bad_itv_uploads_are_refused(phases):
    phases, _ = phases
    one = wire.encode_volumes({"phase_0": phases.volumes[0]})
    typo = wire.encode_volumes({f"phase_{n}": v for n, v in enumerate(phases.volumes)}, {"options": {"windw": 3}})
    with live_server(api_keys=[KEY]) as (url, _):
        http = RemoteEngine(url, api_key=KEY).transport
        for body, message in [(one, "at least 2 phases"), (typo, "unknown ITV options")]:
            with pytest.raises(RemoteError, match=message):
                http.request("POST", "/v1/jobs/itv", content=body, headers=FRAME)
