"""Session store: limits, idle eviction, ownership (a fake clock; no network)."""

import threading

import pytest
from server_helpers import cpu_engine, lung_crop

from rtsam.engines.base import Prompt
from rtsam.server.loadtest import example_case
from rtsam.server.sessions import OwnerLimit, SessionExpired, SessionStore, StoreFull, UnknownSession


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock():
    return Clock()


def store_with(clock, **limits):
    return SessionStore(cpu_engine(), clock=clock, **limits)


def test_ids_are_random_and_bound_to_their_owner(clock):
    store = store_with(clock)
    image, _ = lung_crop()
    a, b = store.create("alice", image), store.create("alice", image)
    assert a.id != b.id and len(a.id) >= 32
    assert store.get("alice", a.id) is a
    with pytest.raises(UnknownSession, match="unknown session"):
        store.get("mallory", a.id)
    with pytest.raises(UnknownSession):
        store.close("mallory", a.id)
    store.close("alice", a.id)
    with pytest.raises(UnknownSession):
        store.get("alice", a.id)


def test_full_store_refuses_with_a_clear_message_and_per_owner_limit(clock):
    store = store_with(clock, max_sessions=3, max_per_owner=2)
    image, _ = lung_crop()
    store.create("alice", image), store.create("alice", image)
    with pytest.raises(OwnerLimit, match="already has 2 open sessions"):
        store.create("alice", image)
    store.create("bob", image)
    with pytest.raises(StoreFull, match=r"3 sessions open \(limit 3\)"):
        store.create("carol", image)


def test_idle_sessions_are_evicted_and_report_expiry_to_their_owner_only(clock):
    store = store_with(clock, idle_timeout=60, max_sessions=1)
    image, _ = lung_crop()
    old = store.create("alice", image)
    clock.now = 30
    store.get("alice", old.id)  # use keeps it alive
    clock.now = 80
    assert store.evict_idle() == 0
    clock.now = 200
    fresh = store.create("bob", image)  # creation evicts the idle session first, so the store has room
    assert len(store) == 1 and store.get("bob", fresh.id) is fresh
    with pytest.raises(SessionExpired, match="60 s idle"):
        store.get("alice", old.id)
    with pytest.raises(UnknownSession):
        store.get("bob", old.id)


def test_a_session_in_use_is_not_evicted(clock):
    store = store_with(clock, idle_timeout=10)
    session = store.create("alice", lung_crop()[0])
    clock.now = 100
    with session.lock:
        assert store.evict_idle() == 0
    assert store.evict_idle() == 1


def test_least_recently_used_sessions_drop_their_embeddings(clock):
    store = store_with(clock, max_cached=1)
    image, box = example_case()  # a box on one slice: one embedding per session
    first, second = store.create("alice", image), store.create("alice", image)
    first.context().predict(Prompt(box_lps=box))
    store.mark_cached(first)
    assert first.context().cached_slices
    second.context().predict(Prompt(box_lps=box))
    store.mark_cached(second)
    assert not first.context().cached_slices and second.context().cached_slices


def test_concurrent_creation_never_exceeds_the_limit(clock):
    store = store_with(clock, max_sessions=5)
    image, _ = lung_crop()
    outcomes = []

    def create():
        try:
            outcomes.append(store.create("alice", image).id)
        except StoreFull:
            outcomes.append(None)

    threads = [threading.Thread(target=create) for _ in range(20)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert len(store) == 5 and sum(o is not None for o in outcomes) == 5
