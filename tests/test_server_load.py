"""A small bounded load test: concurrent sessions with clicks, isolation checked per answer."""

from server_helpers import KEY, live_server

from rtsam.server.loadtest import example_case, run_load_test


def test_concurrent_sessions_stay_isolated_and_all_succeed():
    image, box = example_case()
    with live_server(api_keys=[KEY], max_sessions=8) as (url, app):
        report = run_load_test(url, image, box, sessions=8, clicks=2, api_key=KEY)
        assert len(app.state.store) == 0  # every client closed its session
    assert report["failures"] == [] and report["timeouts"] == 0 and report["deadline_s"] == 30.0
    assert 0 <= report["segments_over_deadline"] <= 16
    assert report["latency_ms"]["segment"]["n"] == 16 and report["latency_ms"]["upload"]["n"] == 8
    assert report["latency_ms"]["edit"]["p50"] <= report["latency_ms"]["edit"]["max"]
