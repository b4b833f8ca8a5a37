"""Admission control: a priority queue with fair share per key in front of the inference slots.

Every request that runs the engine takes a ticket: its kind ("segment", "predict", "itv step"),
its owner (API-key fingerprint), a priority (interactive clicks before whole-volume jobs) and,
for interactive requests, a deadline. The scheduler keeps a moving estimate of each kind's
service time for its engine, so at arrival it knows how long the work ahead will take; a
request that cannot be answered within its deadline is refused at once (``Busy``: 503 with
``Retry-After``) instead of waiting to time out. Within a priority, owners are served round
robin, so one key flooding the queue delays only itself. Jobs hold a slot between their
progress reports and hand it over at each report while interactive requests wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import math
import threading
import time
from collections import OrderedDict, deque
from typing import Callable

from .sessions import StoreError

INTERACTIVE, BATCH = 0, 1
RETRY_AFTER_MAX_S = 120.0
LATE_MARGIN_S = 1.0  # a queue running this much behind its estimate may refuse what it admitted


class Busy(StoreError):
    """The request cannot be answered within its deadline; retry after ``retry_after`` seconds."""

    status = 503


class ServiceTimes:
    """Moving average of the service time of each request kind, per engine."""

    def __init__(self, engine: str, initial_s: float = 2.0, weight: float = 0.3):
        self.engine, self.initial_s, self.weight = engine, float(initial_s), float(weight)
        self._seconds: dict[str, float] = {}

    def estimate(self, kind: str) -> float:
        return self._seconds.get(kind, self.initial_s)

    def record(self, kind: str, seconds: float) -> None:
        old = self._seconds.get(kind)
        self._seconds[kind] = seconds if old is None else old + self.weight * (seconds - old)

    def snapshot(self) -> dict:
        return {"engine": self.engine, **{k: round(v, 3) for k, v in self._seconds.items()}}


class Ticket:
    def __init__(self, owner: str, kind: str, priority: int, deadline: float | None, estimate: float, now: float):
        self.owner, self.kind, self.priority, self.deadline = owner, kind, priority, deadline
        self.estimate, self.arrival, self.started = estimate, now, None
        self.expected_wait = 0.0
        self.refused: Busy | None = None
        self.wake: Callable[[], None] | None = None


class Scheduler:
    def __init__(self, slots: int, times: ServiceTimes, clock: Callable[[], float] = time.monotonic):
        self.slots, self.times, self.clock = max(1, int(slots)), times, clock
        self._queues: dict[int, OrderedDict[str, deque[Ticket]]] = {INTERACTIVE: OrderedDict(), BATCH: OrderedDict()}
        self._running: set[Ticket] = set()
        self._lock = threading.Lock()

    # --- taking and returning slots ------------------------------------------------------
    @contextlib.asynccontextmanager
    async def slot(self, owner: str, kind: str, deadline: float | None, priority: int = INTERACTIVE):
        """Hold a slot (waiting on the event loop); raises ``Busy`` when the deadline cannot be met."""
        loop = asyncio.get_running_loop()
        granted = loop.create_future()

        def wake():
            loop.call_soon_threadsafe(lambda: granted.done() or granted.set_result(None))

        ticket = self._enqueue(owner, kind, priority, deadline, wake)
        try:
            await granted
        except asyncio.CancelledError:
            self.release(ticket, record=False)
            raise
        if ticket.refused:
            raise ticket.refused
        try:
            yield ticket
        finally:
            self.release(ticket)

    def hold(self, owner: str, kind: str, priority: int = BATCH, cancelled: Callable[[], bool] = lambda: False):
        """Wait in this thread for a slot without deadline; None when ``cancelled()`` turns true first."""
        event = threading.Event()
        ticket = self._enqueue(owner, kind, priority, None, event.set)
        while not event.wait(0.2):
            if cancelled():
                self.release(ticket, record=False)
                return None
        return ticket

    def checkpoint(self, ticket: Ticket, cancelled: Callable[[], bool] = lambda: False) -> Ticket | None:
        """A job's progress point: record the step and hand the slot over if interactive work waits."""
        with self._lock:
            waiting = any(self._queues[p] for p in self._queues if p < ticket.priority)
            self._record(ticket)
            ticket.started = self.clock()
        if not waiting:
            return ticket
        self.release(ticket, record=False)
        return self.hold(ticket.owner, ticket.kind, ticket.priority, cancelled)

    def release(self, ticket: Ticket, record: bool = True) -> None:
        with self._lock:
            if ticket in self._running:
                self._running.discard(ticket)
                if record:
                    self._record(ticket)
            else:
                queue = self._queues[ticket.priority].get(ticket.owner)
                if queue is not None and ticket in queue:
                    queue.remove(ticket)
                    if not queue:
                        del self._queues[ticket.priority][ticket.owner]
            self._dispatch()

    def stats(self) -> dict:
        with self._lock:
            queued = {name: sum(len(q) for q in self._queues[p].values())
                      for p, name in ((INTERACTIVE, "interactive"), (BATCH, "batch"))}
            return {"slots": self.slots, "running": len(self._running), "queued": queued,
                    "service_s": self.times.snapshot()}

    # --- inside the lock ------------------------------------------------------------------
    def _enqueue(self, owner: str, kind: str, priority: int, deadline: float | None, wake) -> Ticket:
        with self._lock:
            ticket = Ticket(owner, kind, priority, deadline, self.times.estimate(kind), self.clock())
            if deadline is not None:
                ticket.expected_wait = self._wait_estimate(ticket)
                if ticket.expected_wait > 0 and ticket.expected_wait + ticket.estimate > deadline:
                    raise self._busy(ticket, ticket.expected_wait)
            ticket.wake = wake
            self._queues[priority].setdefault(owner, deque()).append(ticket)
            self._dispatch()
            return ticket

    def _dispatch(self) -> None:
        while len(self._running) < self.slots:
            ticket = self._next()
            if ticket is None:
                return
            now = self.clock()
            waited = now - ticket.arrival
            ticket.estimate = max(ticket.estimate, self.times.estimate(ticket.kind))  # learnt while it waited
            if ticket.deadline is not None and waited + ticket.estimate > ticket.deadline and \
                    waited > ticket.expected_wait + LATE_MARGIN_S:  # the queue fell behind: refuse, not answer late
                ticket.refused = self._busy(ticket, waited)
            else:
                ticket.started = now
                self._running.add(ticket)
            ticket.wake()

    def _next(self) -> Ticket | None:
        """The next ticket: highest priority first, owners in turn (round robin) within it."""
        for priority in sorted(self._queues):
            queues = self._queues[priority]
            if queues:
                owner, queue = next(iter(queues.items()))
                ticket = queue.popleft()
                if queue:
                    queues.move_to_end(owner)
                else:
                    del queues[owner]
                return ticket
        return None

    def _wait_estimate(self, ticket: Ticket) -> float:
        """Seconds until ``ticket`` would start: the slots work off what runs and what is served before it."""
        now = self.clock()
        free_at = [max(0.0, t.estimate - (now - t.started)) for t in self._running]
        free_at += [0.0] * (self.slots - len(free_at))
        heapq.heapify(free_at)
        for priority, queues in self._queues.items():
            if priority < ticket.priority:
                ahead = [t for queue in queues.values() for t in queue]
            elif priority == ticket.priority:
                ahead = _round_robin_ahead(queues, ticket.owner)
            else:
                continue
            for other in ahead:
                heapq.heapreplace(free_at, free_at[0] + other.estimate)
        return free_at[0]

    def _busy(self, ticket: Ticket, wait: float) -> Busy:
        """Refusal of ``ticket`` facing ``wait`` seconds; retry when the wait would fit its deadline."""
        deadline = ticket.deadline or 0.0
        retry = min(RETRY_AFTER_MAX_S, max(1.0, wait - max(0.0, deadline - ticket.estimate)))
        error = Busy(f"server busy: a {ticket.kind} would take about {wait + ticket.estimate:.0f} s here, over its "
                     f"{deadline:g} s deadline ({sum(len(q) for q in self._queues[ticket.priority].values())} "
                     f"queued); retry in {math.ceil(retry)} s")
        error.retry_after = retry
        return error

    def _record(self, ticket: Ticket) -> None:
        if ticket.started is not None:
            self.times.record(ticket.kind, self.clock() - ticket.started)


def _round_robin_ahead(queues: OrderedDict[str, deque[Ticket]], owner: str) -> list[Ticket]:
    """The queued tickets served before a new ticket of ``owner`` when owners take turns."""
    mine = len(queues.get(owner, ()))
    ahead, before_me = [], True
    for other, queue in list(queues.items()) + ([] if owner in queues else [(owner, deque())]):
        if other == owner:
            ahead += queue
            before_me = False
        else:  # owners before ``owner`` in the turn order get one turn more than those after it
            ahead += list(queue)[: mine + 1 if before_me else mine]
    return ahead
