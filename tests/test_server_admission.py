"""Admission control and per-key limits without an engine: a fake clock, real queues and threads."""

import asyncio
import threading

import pytest

from rtsam.server.admission import BATCH, Busy, Scheduler, ServiceTimes
from rtsam.server.limits import KeyLimits, RateLimited


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def scheduler(slots=1, segment_s=2.0):
    clock = Clock()
    times = ServiceTimes("litemedsam", initial_s=segment_s)
    return Scheduler(slots, times, clock), clock


def test_service_time_is_a_moving_estimate_per_kind_with_its_spread():
    times = ServiceTimes("litemedsam", initial_s=2.0, weight=0.5)
    assert times.estimate("segment") == 2.0 and times.spread("segment") == 0.0
    times.record("segment", 4.0)
    assert times.spread("segment") == 0.0
    times.record("segment", 2.0)
    assert times.estimate("segment") == 3.0 and times.estimate("predict") == 2.0
    assert times.spread("segment") == 2.0  # twice the mean deviation: 0.5 * |2 - 4|
    assert times.snapshot() == {"engine": "litemedsam", "segment": 3.0}


def test_admission_leaves_room_for_a_request_slower_than_the_mean():
    async def main():
        sched, _ = scheduler(slots=1)
        for seconds in (2.0, 4.0, 2.0, 4.0):
            sched.times.record("segment", seconds)  # mean 2.9 s, spread 1.8 s
        async with sched.slot("alice", "segment", deadline=8):  # 2.9 s left
            with pytest.raises(Busy, match="about 8 s here, over its 7 s deadline"):  # 2.9 + 2.9 fits on average
                async with sched.slot("bob", "segment", deadline=7):
                    pass
            admitted = asyncio.ensure_future(_hold_slot(sched, "carol", 11))  # after bob's place: 3 * 2.9 + 1.8
            await asyncio.sleep(0)
            assert not admitted.done()
        await admitted

    asyncio.run(main())


def test_request_that_cannot_meet_its_deadline_is_refused_at_once_with_retry_after():
    async def main():
        sched, clock = scheduler(slots=1, segment_s=2.0)
        async with sched.slot("alice", "segment", deadline=10):  # running: 2 s left
            queued = [asyncio.ensure_future(_hold_slot(sched, "alice", 10)) for _ in range(4)]
            await asyncio.sleep(0)
            assert sched.stats()["queued"]["interactive"] == 4  # the fourth ends at 2 + 3 * 2 + 2 = 10 s: fits
            with pytest.raises(Busy, match=r"server busy: a segment would take about 12 s here, over its 10 s") \
                    as refused:
                async with sched.slot("alice", "segment", deadline=10):
                    pass
            assert refused.value.retry_after == 2.0 and refused.value.status == 503
            assert sched.stats()["queued"]["interactive"] == 4  # the refused request left no trace
            clock.now = 1.0
            bob = asyncio.ensure_future(_hold_slot(sched, "bob", 5))  # 1 s left + one of alice's + his own = 5 s
            await asyncio.sleep(0)
        await asyncio.gather(*queued, bob)

    asyncio.run(main())


async def _hold_slot(sched, owner, deadline, served=None, kind="segment", reservation=None, name=None):
    async with sched.slot(owner, kind, deadline, reservation=reservation):
        if served is not None:
            served.append(name or owner)
        await asyncio.sleep(0)


def test_owners_take_turns_so_a_flood_delays_only_its_own_key():
    async def main():
        sched, _ = scheduler(slots=1, segment_s=1.0)
        served = []
        async with sched.slot("alice", "segment", deadline=100):
            flood = [asyncio.ensure_future(_hold_slot(sched, "alice", 100, served)) for _ in range(5)]
            await asyncio.sleep(0)
            late = asyncio.ensure_future(_hold_slot(sched, "bob", 100, served))
            await asyncio.sleep(0)
        await asyncio.gather(*flood, late)
        assert served == ["alice", "bob", "alice", "alice", "alice", "alice"]

    asyncio.run(main())


def test_fair_share_admission_refuses_the_flooding_key_but_admits_another():
    async def main():
        sched, _ = scheduler(slots=1, segment_s=1.0)
        served = []
        async with sched.slot("alice", "segment", deadline=6):
            flood = []
            for _ in range(8):  # alice queues until her own backlog passes the deadline
                flood.append(asyncio.ensure_future(_hold_slot(sched, "alice", 6, served)))
                await asyncio.sleep(0)
            refused = [t for t in flood if t.done() and isinstance(t.exception(), Busy)]
            assert len(refused) == 3  # 1 s running + 5 queued: a sixth would end after 7 s
            bob = asyncio.ensure_future(_hold_slot(sched, "bob", 3, served))  # ahead of him: one turn of alice
            await asyncio.sleep(0)
            assert not bob.done()  # admitted, waiting
        await asyncio.gather(*flood, bob, return_exceptions=True)
        assert bob.exception() is None and served == ["alice", "bob"] + ["alice"] * 4

    asyncio.run(main())


def test_interactive_requests_go_before_batch_jobs_which_hand_over_at_checkpoints():
    sched, clock = scheduler(slots=1, segment_s=1.0)
    job = sched.hold("carol", "itv step", BATCH)
    assert job is not None and sched.stats()["running"] == 1
    order = []

    async def click():
        async with sched.slot("alice", "segment", deadline=30):
            order.append("click")

    def job_thread():
        clock.now = 5.0
        ticket = sched.checkpoint(job)  # a click waits: the job hands over its slot and queues again
        order.append("job step")
        sched.release(ticket, record=False)

    async def main():
        task = asyncio.ensure_future(click())
        await asyncio.sleep(0.05)
        assert order == []  # the job holds the only slot
        thread = threading.Thread(target=job_thread)
        thread.start()
        await task
        await asyncio.to_thread(thread.join)

    asyncio.run(main())
    assert order == ["click", "job step"]
    assert sched.times.estimate("itv step") == 5.0  # the step was measured at the checkpoint


def test_a_queued_job_can_be_cancelled_while_waiting_for_a_slot():
    sched, _ = scheduler(slots=1)
    running = sched.hold("alice", "itv step", BATCH)
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    assert sched.hold("bob", "itv step", BATCH, cancel.is_set) is None
    assert sched.stats()["queued"] == {"interactive": 0, "batch": 0}
    sched.release(running)
    assert sched.stats()["running"] == 0


def test_a_request_whose_wait_overran_the_estimate_is_refused_not_served_late():
    async def main():
        sched, clock = scheduler(slots=1, segment_s=2.0)
        async with sched.slot("alice", "segment", deadline=10):
            waiting = asyncio.ensure_future(_hold_slot(sched, "bob", 5))  # 2 + 2 <= 5: admitted
            await asyncio.sleep(0)
            clock.now = 4.0  # the running request took longer than its estimate
        with pytest.raises(Busy, match="over its 5 s deadline"):
            await waiting

    asyncio.run(main())


def test_key_limits_per_minute_with_retry_after():
    clock = Clock()
    limits = KeyLimits(requests_per_minute=3, upload_mb_per_minute=1.0, clock=clock)
    for t in (0, 10, 20):
        clock.now = t
        limits.charge_request("alice")
    with pytest.raises(RateLimited, match=r"3 requests in the last minute \(limit 3, --key-requests-per-minute\)") \
            as refused:
        limits.charge_request("alice")
    assert refused.value.retry_after == 40.0 and refused.value.status == 429
    limits.charge_request("bob")  # other keys are not affected
    clock.now = 60.5
    limits.charge_request("alice")  # the first request left the window
    limits.charge_upload("alice", 600_000)
    with pytest.raises(RateLimited, match="upload limit of 1 MiB per minute") as refused:
        limits.check_upload("alice", 600_000)
    assert refused.value.retry_after == 60.0
    with pytest.raises(RateLimited) as never:
        limits.check_upload("bob", 2 << 20)
    assert never.value.retry_after is None  # larger than the whole budget: retrying cannot help
    unlimited = KeyLimits(0, 0, clock)
    for _ in range(1000):
        unlimited.charge_request("alice")


def test_an_engine_slower_than_the_deadline_serves_when_a_slot_is_free_and_keeps_the_next_turn():
    async def main():
        sched, clock = scheduler(slots=1, segment_s=50.0)
        async with sched.slot("alice", "segment", deadline=30):  # an idle server serves it, however slow
            with pytest.raises(Busy, match="about 100 s") as refused:
                async with sched.slot("bob", "segment", deadline=30):
                    pass
            clock.now = 30.0  # alice's request ended early
        assert refused.value.retry_after == 15.0  # early (half a deadline): the client comes back to check
        assert sched.stats()["reserved"] == 1
        await _hold_slot(sched, "bob", 30, reservation=refused.value.ticket)  # the slot is free: served

    asyncio.run(main())


async def _refused(sched, owner, deadline, kind="segment", reservation=None) -> Busy:
    with pytest.raises(Busy) as refused:
        async with sched.slot(owner, kind, deadline, reservation=reservation):
            pass
    return refused.value


def test_a_refused_request_keeps_its_place_so_cheaper_later_requests_do_not_overtake_it_forever():
    async def main():
        sched, clock = scheduler(slots=1)
        sched.times.record("segment", 1.0)
        sched.times.record("segment (embedding)", 6.0)  # a first segment costs more: it fits only a short queue
        served = []
        async with sched.slot("alice", "segment", deadline=10):  # 1 s running
            cheap = [asyncio.ensure_future(_hold_slot(sched, "alice", 10, served, name=f"c{n}")) for n in range(4)]
            await asyncio.sleep(0)
            first = await _refused(sched, "alice", 10, "segment (embedding)")  # 5 s ahead + 6 s > 10 s
            assert first.ticket and first.retry_after == 1.0
            assert "your place in the queue is kept" in str(first)
            # a click arriving now would fit (5 s ahead + 1 s) but queues behind the reservation
            later = await _refused(sched, "alice", 10)
            assert sched.stats()["queued"]["interactive"] == 4 and sched.stats()["reserved"] == 2
            clock.now = 1.0
        await asyncio.sleep(0)  # c0 runs; the retry takes its place back: 3 s ahead + 6 s fits
        back = asyncio.ensure_future(_hold_slot(sched, "alice", 10, served, "segment (embedding)", first.ticket, "E"))
        again = await _refused(sched, "alice", 10, reservation=later.ticket)  # 9 s ahead of the click: still waits
        assert again.ticket == later.ticket  # the same place
        await asyncio.gather(*cheap, back)
        assert served == ["c0", "c1", "c2", "c3", "E"]
        await _hold_slot(sched, "alice", 10, served, reservation=later.ticket, name="later")
        assert served[-1] == "later" and sched.stats()["reserved"] == 0

    asyncio.run(main())


def test_a_retry_without_its_ticket_or_with_another_keys_queues_at_the_back():
    async def main():
        sched, _ = scheduler(slots=1, segment_s=4.0)
        async with sched.slot("alice", "segment", deadline=10):
            queued = asyncio.ensure_future(_hold_slot(sched, "alice", 10))  # 4 + 4 <= 10
            await asyncio.sleep(0)
            first = await _refused(sched, "alice", 10)  # 8 s ahead
            assert (await _refused(sched, "alice", 10)).retry_after > first.retry_after  # behind the reservation
            stolen = await _refused(sched, "bob", 5, reservation=first.ticket)  # bob cannot take alice's place
            assert stolen.ticket != first.ticket and sched.stats()["reserved"] == 3
        await queued

    asyncio.run(main())


def test_other_keys_still_take_turns_with_a_key_holding_reservations():
    async def main():
        sched, clock = scheduler(slots=1, segment_s=1.0)
        served = []
        async with sched.slot("alice", "segment", deadline=3):
            mine = [asyncio.ensure_future(_hold_slot(sched, "alice", 3, served)) for _ in range(2)]
            await asyncio.sleep(0)
            reservations = [await _refused(sched, "alice", 3) for _ in range(3)]
            bob = asyncio.ensure_future(_hold_slot(sched, "bob", 3, served))  # 1 s running + one alice turn
            await asyncio.sleep(0)
            assert not bob.done()
        await asyncio.gather(*mine, bob)
        assert served == ["alice", "bob", "alice"]
        clock.now = 100.0  # their clients never came back: the reservations lapse
        assert sched.stats()["reserved"] == 0
        await _hold_slot(sched, "alice", 3, served, reservation=reservations[0].ticket)  # a lapsed ticket: a new place
        assert served[-1] == "alice"

    asyncio.run(main())


def test_a_request_refused_late_keeps_the_head_of_the_line():
    async def main():
        sched, clock = scheduler(slots=1, segment_s=2.0)
        served = []
        async with sched.slot("alice", "segment", deadline=10):
            late = asyncio.ensure_future(_hold_slot(sched, "bob", 5, served))  # 2 + 2 <= 5: admitted
            await asyncio.sleep(0)
            clock.now = 4.0  # the running request overran its estimate
        with pytest.raises(Busy) as refused:
            await late
        assert refused.value.retry_after == 1.0
        async with sched.slot("alice", "segment", deadline=10):  # takes the free slot meanwhile
            after = asyncio.ensure_future(_hold_slot(sched, "carol", 30, served, name="carol"))  # behind bob
            await asyncio.sleep(0)
            back = asyncio.ensure_future(_hold_slot(sched, "bob", 10, served, reservation=refused.value.ticket))
            await asyncio.sleep(0)
        await asyncio.gather(after, back)
        assert served == ["bob", "carol"]

    asyncio.run(main())


def test_a_job_keeps_its_slot_at_a_checkpoint_when_only_a_reservation_is_queued():
    sched, _ = scheduler(slots=1)
    sched.times.record("itv step", 50.0)
    job = sched.hold("carol", "itv step", BATCH)
    refused = asyncio.run(_refused(sched, "alice", 10))  # its client sleeps: nothing interactive waits now
    assert sched.checkpoint(job) is job and sched.stats()["running"] == 1
    sched.release(job)
    assert refused.ticket and sched.stats()["reserved"] == 1  # still kept for alice's retry
