"""Admission control: a priority queue with fair share per key in front of the inference slots.

Every request that runs the engine takes a ticket: its kind ("segment", "predict", "itv step"),
its owner (API-key fingerprint), a priority (interactive clicks before whole-volume jobs) and,
for interactive requests, a deadline. The scheduler keeps a moving estimate of each kind's
service time for its engine, so at arrival it knows how long the work ahead will take; a
request that cannot be answered within its deadline is refused at once (``Busy``: 503 with
``Retry-After``) instead of waiting to time out. A refused request keeps its place: the queue
holds a reservation for it, named by the 503's ticket, which the retry sends back to take that
place (later arrivals queue behind it, so under sustained overload a refused request is not
overtaken forever). Within a priority, owners are served round robin, so one key flooding the
queue delays only itself. Jobs hold a slot between their progress reports and hand it over at
each report while interactive requests wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import math
import secrets
import threading
import time
from collections import OrderedDict, deque
from typing import Callable

from . import RETRY_JITTER
from .sessions import StoreError

INTERACTIVE, BATCH = 0, 1
LATE_MARGIN_S = 1.0  # a queue running this much behind its estimate may refuse what it admitted
RESERVATION_GRACE_S = 10.0  # a reservation is dropped this long after its client's latest expected return


class Busy(StoreError):
    """The request cannot be answered within its deadline; retry after ``retry_after`` seconds."""

    status = 503
    ticket: str | None = None  # names the reservation holding the request's place; sent back with the retry


class ServiceTimes:
    """Moving average of the service time of each request kind, per engine, and of its deviation."""

    def __init__(self, engine: str, initial_s: float = 2.0, weight: float = 0.3):
        self.engine, self.initial_s, self.weight = engine, float(initial_s), float(weight)
        self._seconds: dict[str, float] = {}
        self._deviation: dict[str, float] = {}

    def estimate(self, kind: str) -> float:
        return self._seconds.get(kind, self.initial_s)

    def spread(self, kind: str) -> float:
        """How much longer than ``estimate`` one request may well take (twice the mean deviation)."""
        return 2.0 * self._deviation.get(kind, 0.0)

    def record(self, kind: str, seconds: float) -> None:
        old = self._seconds.get(kind)
        if old is None:
            self._seconds[kind], self._deviation[kind] = seconds, 0.0
            return
        self._seconds[kind] = old + self.weight * (seconds - old)
        self._deviation[kind] += self.weight * (abs(seconds - old) - self._deviation[kind])

    def snapshot(self) -> dict:
        return {"engine": self.engine, **{k: round(v, 3) for k, v in self._seconds.items()}}


class Ticket:
    """A request's place in the queue; without ``wake`` it is a reservation (its client waits to retry)."""

    def __init__(self, owner: str, kind: str, priority: int, deadline: float | None, estimate: float, now: float):
        self.owner, self.kind, self.priority, self.deadline = owner, kind, priority, deadline
        self.estimate, self.arrival, self.started = estimate, now, None
        self.expected_wait = 0.0
        self.refused: Busy | None = None
        self.wake: Callable[[], None] | None = None
        self.token: str | None = None
        self.back_from = self.back_by = -math.inf  # when the client of a reservation is expected back


class Scheduler:
    def __init__(self, slots: int, times: ServiceTimes, clock: Callable[[], float] = time.monotonic):
        self.slots, self.times, self.clock = max(1, int(slots)), times, clock
        self._queues: dict[int, OrderedDict[str, deque[Ticket]]] = {INTERACTIVE: OrderedDict(), BATCH: OrderedDict()}
        self._running: set[Ticket] = set()
        self._reserved: dict[str, Ticket] = {}
        self._lock = threading.Lock()

    # --- taking and returning slots ------------------------------------------------------
    @contextlib.asynccontextmanager
    async def slot(self, owner: str, kind: str, deadline: float | None, priority: int = INTERACTIVE,
                   reservation: str | None = None):
        """Hold a slot (waiting on the event loop); raises ``Busy`` when the deadline cannot be met.
        ``reservation``: the ticket of an earlier refusal of this request, whose place it takes."""
        loop = asyncio.get_running_loop()
        granted = loop.create_future()

        def wake():
            loop.call_soon_threadsafe(lambda: granted.done() or granted.set_result(None))

        ticket = self._enqueue(owner, kind, priority, deadline, wake, reservation)
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
            waiting = any(t.wake is not None for p in self._queues if p < ticket.priority
                          for queue in self._queues[p].values() for t in queue)  # reservations do not wait here
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
                self._unqueue(ticket)
            self._dispatch()

    def stats(self) -> dict:
        with self._lock:
            self._expire()
            queued = {name: sum(t.wake is not None for q in self._queues[p].values() for t in q)
                      for p, name in ((INTERACTIVE, "interactive"), (BATCH, "batch"))}
            return {"slots": self.slots, "running": len(self._running), "queued": queued,
                    "reserved": len(self._reserved), "service_s": self.times.snapshot()}

    # --- inside the lock ------------------------------------------------------------------
    def _enqueue(self, owner: str, kind: str, priority: int, deadline: float | None, wake,
                 reservation: str | None = None) -> Ticket:
        with self._lock:
            self._expire()
            now = self.clock()
            ticket = self._reserved.pop(reservation, None) if reservation else None
            if ticket is not None and (ticket.owner, ticket.priority) == (owner, priority):
                ticket.kind, ticket.deadline, ticket.arrival = kind, deadline, now  # back in its place
                ticket.estimate, ticket.refused = self.times.estimate(kind), None
            else:
                if ticket is not None:  # another key's ticket: theirs stays
                    self._reserved[reservation] = ticket
                ticket = Ticket(owner, kind, priority, deadline, self.times.estimate(kind), now)
                self._queues[priority].setdefault(owner, deque()).append(ticket)
            if deadline is not None:
                ticket.expected_wait = self._wait_estimate(ticket)
                if ticket.expected_wait > 0 and ticket.expected_wait + self._service_bound(ticket) > deadline:
                    raise self._refuse(ticket, ticket.expected_wait)
            ticket.wake = wake
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
            if ticket.deadline is not None and waited + self._service_bound(ticket) > ticket.deadline and \
                    waited > ticket.expected_wait + LATE_MARGIN_S:  # the queue fell behind: refuse, not answer late
                self._queues[ticket.priority].setdefault(ticket.owner, deque()).appendleft(ticket)
                self._queues[ticket.priority].move_to_end(ticket.owner, last=False)  # keeps the head of the line
                wake, ticket.refused = ticket.wake, self._refuse(ticket, waited, retry=1.0)
                wake()
                continue
            ticket.started = now
            self._running.add(ticket)
            ticket.wake()

    def _next(self) -> Ticket | None:
        """The next waiting ticket: highest priority first, owners in turn (round robin) within it,
        each owner's in order; reservations keep their place but are passed over until claimed."""
        for priority in sorted(self._queues):
            queues = self._queues[priority]
            for owner, queue in list(queues.items()):
                ticket = next((t for t in queue if t.wake is not None), None)
                if ticket is None:
                    continue
                queue.remove(ticket)
                if queue:
                    queues.move_to_end(owner)
                else:
                    del queues[owner]
                return ticket
        return None

    def _wait_estimate(self, ticket: Ticket) -> float:
        """Seconds until queued ``ticket`` would start: the slots work off what runs and what is served before
        it, reservations included when their clients are expected back by their turn (and not overdue)."""
        now = self.clock()
        free_at = [max(0.0, t.estimate - (now - t.started)) for t in self._running]
        free_at += [0.0] * (self.slots - len(free_at))
        heapq.heapify(free_at)
        for priority in sorted(self._queues):
            for other in _service_order(self._queues[priority]):
                if other is ticket:
                    return free_at[0]
                if other.wake is not None or other.back_from <= now + free_at[0] and now <= other.back_by:
                    heapq.heapreplace(free_at, free_at[0] + self.times.estimate(other.kind))
        raise AssertionError("the ticket is not queued")

    def _refuse(self, ticket: Ticket, wait: float, retry: float | None = None) -> Busy:
        """``Busy`` for queued ``ticket`` facing ``wait`` seconds, its place kept as a reservation. By default
        retry when the wait would fit its deadline, but for a long wait well before its turn (even with the
        client's jitter and a queue moving faster than estimated) and within half a deadline: a slot must not
        idle while the clients of the queued work all sleep (a kind not yet measured is overestimated)."""
        deadline, service = ticket.deadline or 0.0, self._service_bound(ticket)
        if retry is None:
            fits_in = wait - max(0.0, deadline - service)
            retry = max(1.0, min(fits_in, wait / (2 * RETRY_JITTER), deadline / 2))
        error = Busy(f"server busy: a {ticket.kind} would take about {wait + service:.0f} s here, over its "
                     f"{deadline:g} s deadline ({sum(len(q) for q in self._queues[ticket.priority].values())} "
                     f"queued); your place in the queue is kept: retry in {math.ceil(retry)} s")
        ticket.wake, ticket.token = None, ticket.token or secrets.token_urlsafe(12)
        now = self.clock()
        ticket.back_from, ticket.back_by = now + retry, now + math.ceil(retry) * RETRY_JITTER + 1.0
        self._reserved[ticket.token] = ticket
        error.retry_after, error.ticket = retry, ticket.token
        return error

    def _service_bound(self, ticket: Ticket) -> float:
        """Seconds within which ``ticket``'s work will most likely be done (admission answers within the deadline
        when a request takes longer than the mean)."""
        return ticket.estimate + self.times.spread(ticket.kind)

    def _expire(self) -> None:
        """Drop the reservations whose clients did not come back in time."""
        now = self.clock()
        for token, ticket in list(self._reserved.items()):
            if ticket.back_by + RESERVATION_GRACE_S < now:
                del self._reserved[token]
                self._unqueue(ticket)

    def _unqueue(self, ticket: Ticket) -> None:
        queue = self._queues[ticket.priority].get(ticket.owner)
        if queue is not None and ticket in queue:
            queue.remove(ticket)
            if not queue:
                del self._queues[ticket.priority][ticket.owner]

    def _record(self, ticket: Ticket) -> None:
        if ticket.started is not None:
            self.times.record(ticket.kind, self.clock() - ticket.started)


def _service_order(queues: OrderedDict[str, deque[Ticket]]):
    """The queued tickets of one priority in the order they are served: owners in turn, one ticket each."""
    turns = deque(iter(queue) for queue in queues.values())
    while turns:
        tickets = turns.popleft()
        ticket = next(tickets, None)
        if ticket is not None:
            yield ticket
            turns.append(tickets)
