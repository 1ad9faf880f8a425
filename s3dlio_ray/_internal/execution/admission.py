"""What admits a share's operations, in both engines: when a phase stops starting them, and
how fast it may.

A phase ends when its items run out, when its duration is over, when it is asked to stop
(autoterm), or when an error says every further request would fail too. Operations already in
flight always finish and count. A paused phase starts nothing until it is resumed, and its
paused time counts toward neither its duration nor its elapsed time.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from s3dlio_ray._internal.model.open_loop import Arrival
from s3dlio_ray._internal.model.vocabulary import EndedBy
from s3dlio_ray._internal.settings.changes import UNCHANGED, Overrides
from s3dlio_ray._internal.tuning.pacing import Pacer, RateLimit


class ActiveClock:
    """perf_counter less the time paused: what a share's duration, elapsed time and its
    accelerators' utilization count."""

    def __init__(self, paused: bool = False, now: Callable[[], float] = time.perf_counter) -> None:
        self._now = now
        self._paused_s = 0.0
        self._paused_at: float | None = None
        self._resumed = asyncio.Event()
        self._resumed.set()
        self.pause(paused)

    def __call__(self) -> float:
        now = self._now()
        return now - self._paused_s - (0.0 if self._paused_at is None else now - self._paused_at)

    @property
    def paused(self) -> bool:
        return self._paused_at is not None

    def pause(self, paused: bool) -> None:
        now = self._now()
        if paused and self._paused_at is None:
            self._paused_at = now
            self._resumed.clear()
        elif not paused and self._paused_at is not None:
            self._paused_s += now - self._paused_at
            self._paused_at = None
            self._resumed.set()

    async def resumed(self) -> None:
        """Until resumed, or woken (a stop)."""
        await self._resumed.wait()

    def wake(self) -> None:
        self._resumed.set()


@dataclass(frozen=True)
class ShareLimits:
    """What ends a phase besides running out of keys, and how fast this engine may go.

    With `duration_s` a phase runs for that long: PUT goes on past its keys with new ones (see
    keys.KeyRange.cycled), GET reads its keys again. `rate` is this engine's share of the cap;
    `overrides`: the run's changes so far (see changes.py), pause included.
    """

    duration_s: float | None = None
    rate: RateLimit | None = None
    overrides: Overrides = UNCHANGED
    clock: ActiveClock | None = field(default=None, compare=False)
    """The share's own clock, which the engine gives it (paused time does not count)."""
    arrival: Arrival | None = None
    """This engine's share of an offered load (open loop), when the phase has one."""


WHOLE_PHASE = ShareLimits()
"""Every key once, as fast as the endpoint allows."""


async def _arrive(items: Iterable[Any]) -> AsyncIterator[Any]:
    for item in items:
        yield item


class Schedule(Protocol):
    """When each operation is due (open loop): seconds after `origin`, a perf_counter time."""

    origin: float

    def due(self, item: Any) -> float: ...


STOP_GRACE_S = 5.0
"""How long operations in flight may go on after an error or an interruption stopped the phase."""


class Admission:
    """Asked before each operation starts: wait for the rate limit, then say whether to stop."""

    def __init__(self, limits: ShareLimits, cost: Callable[[Any], int]) -> None:
        self.clock = limits.clock or ActiveClock(limits.overrides.paused)
        self.started = self.clock()
        self._duration_s = limits.duration_s
        self._pacer = Pacer(limits.rate) if limits.rate else None
        self._steering: Pacer | None = None
        """The driver's pace for this engine (the cluster controller's), besides the cap."""
        self._cost = cost
        self.stopped_by: EndedBy | None = None
        """Set to end the phase early: autoterm, an interruption, or another share's error."""
        self._stopping = asyncio.Event()
        """Set with `stopped_by`: a wait for the rate limit ends at once (the grace after a stop
        is STOP_GRACE_S, whatever the limit)."""
        self.fatal: BaseException | None = None
        """The first error every further request would hit too (engines set it)."""

    async def run(
        self,
        items: Iterable[Any] | AsyncIterator[Any],
        acquire: Callable[[], Awaitable[None]],
        release: Callable[[], None],
        start: Callable[[Any, float | None], Awaitable[None]],
        schedule: Schedule | None = None,
    ) -> tuple[int, EndedBy]:
        """Start `start(item, due)` for each item admitted (it must release its slot when done)
        and wait for all of them; answer how many started and what ended the phase. Items may
        come as they become due (an async iterator, closed once the phase ends); with a
        `schedule`, each is started when it is due (its perf_counter time is `due`), whether or
        not earlier ones have ended."""
        tasks: set[asyncio.Task[None]] = set()
        started, ended_by = 0, EndedBy.KEYS
        source = items if isinstance(items, AsyncIterator) else _arrive(items)
        try:
            async for item in source:
                due = None if schedule is None else schedule.origin + schedule.due(item)
                if due is not None:
                    await self._until(due)
                if not await self._admit(item, acquire, release):
                    ended_by = self.ended_by() or EndedBy.KEYS
                    break
                started += 1
                task = asyncio.ensure_future(start(item, due))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            if tasks and ended_by in (EndedBy.ERROR, EndedBy.INTERRUPTED):
                _, late = await asyncio.wait(set(tasks), timeout=STOP_GRACE_S)
                for task in late:
                    task.cancel()
            for outcome in await asyncio.gather(*tasks, return_exceptions=True):
                if isinstance(outcome, Exception):
                    raise outcome
        finally:
            for task in tasks:
                task.cancel()
            close = getattr(source, "aclose", None)
            if close is not None:
                await close()
        return started, ended_by

    async def _admit(
        self, item: Any, acquire: Callable[[], Awaitable[None]], release: Callable[[], None]
    ) -> bool:
        """Wait out a pause and the rate limit, then take a free slot; False (no slot held) once
        the phase ends."""
        while self.clock.paused and self.ended_by() is None:
            await self.clock.resumed()
        await self._pace(item)
        if self.ended_by() is None:
            await acquire()
            if self.ended_by() is None:
                return True
            release()
        return False

    def driver(self, items: Iterable[Any], slots: Slots, begin: Callable[[Any], None]) -> Driver:
        """`run` for operations that end in callbacks: see Driver."""
        return Driver(self, items, slots, begin)

    async def start_at(self, origin: float) -> None:
        """Begin at perf_counter time `origin` (a schedule's start, set ahead), not now: wait
        for it (a stop ends the wait) and count the share's time from it."""
        await self._until(origin)
        self.started = self.clock()

    def adjust(self, limits: ShareLimits) -> None:
        """Take a changed share of the rate cap, and a pause or a resume."""
        if limits.rate != (None if self._pacer is None else self._pacer.limit):
            self._pacer = None if limits.rate is None else Pacer(limits.rate)
        self.clock.pause(limits.overrides.paused)

    def active_s(self) -> float:
        """Seconds since the phase started, less the time it was paused."""
        return self.clock() - self.started

    def stop(self, reason: EndedBy) -> None:
        """End the phase early (a pause included): start nothing more."""
        self.stopped_by = reason
        self._stopping.set()
        self.clock.wake()

    def steer(self, bytes_per_s: float | None) -> None:
        """Keep to `bytes_per_s` from now on (None: no pace but the cap)."""
        current = None if self._steering is None else self._steering.limit.per_s
        if bytes_per_s != current:
            self._steering = None if bytes_per_s is None else Pacer(RateLimit("bytes", bytes_per_s))

    async def _pace(self, item: Any) -> None:
        await self._wait(self.pace(item))

    def pace(self, item: Any) -> float:
        """Seconds `item` must wait for the rate limit and the driver's pace (booked now), at
        most until the duration ends."""
        if self._pacer is None and self._steering is None:
            return 0.0
        now = time.perf_counter()
        cost = self._cost(item)
        wait = max(pacer.delay(cost, now) for pacer in (self._pacer, self._steering) if pacer)
        if self._duration_s is not None:
            wait = min(wait, self._duration_s - self.active_s())
        return wait

    async def _until(self, due: float) -> None:
        """Sleep until perf_counter time `due`: a short wait as one timer, a long one (a gap
        in a log) ending when the phase is stopped."""
        wait = due - time.perf_counter()
        if wait < 0.05:
            if wait > 0:
                await asyncio.sleep(wait)
            return
        await self._wait(wait)

    async def _wait(self, seconds: float) -> None:
        """Sleep, ending at once when the phase is stopped."""
        if seconds > 0 and not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), seconds)

    def ended_by(self) -> EndedBy | None:
        """Why the phase must start nothing more, or None while it may go on."""
        if self.fatal is not None:
            return EndedBy.ERROR
        if self.stopped_by is not None:
            return self.stopped_by
        if self._duration_s is not None and self.active_s() >= self._duration_s:
            return EndedBy.DURATION
        return None


class Slots(Protocol):
    """The in-flight limit as a Driver takes it: a slot taken without waiting, and a call back
    whenever one is freed or the limit rises."""

    in_flight: int
    on_room: Callable[[], None] | None

    def try_acquire(self) -> bool: ...


_NONE = object()


class Driver:
    """A share's operations started from callbacks rather than one task each: `begin(item)`
    starts one and returns, and the operation releases its slot when it ends; the slot's
    release (`Slots.on_room`) has `pump` start the next ones once the loop has run the
    callbacks ready with it (one call for all the slots freed in a turn: starting each next
    request from inside the one before's callback cost a fifth more CPU a small request,
    BENCHMARKS.md). The same rules as `Admission.run`:
    a pause, the rate limit and the driver's pace wait (in a task while they last), the phase
    ends when the items run out, its duration is over, it is stopped or an error is fatal,
    and what is in flight then finishes (within STOP_GRACE_S after an error or a stop)."""

    def __init__(
        self,
        admission: Admission,
        items: Iterable[Any],
        slots: Slots,
        begin: Callable[[Any], None],
    ) -> None:
        self._admission = admission
        self._items = iter(items)
        self._slots = slots
        self._begin = begin
        self.started = 0
        self.ended_by: EndedBy | None = None
        """Why nothing more starts, once that is so."""
        loop = asyncio.get_running_loop()
        self._decided: asyncio.Future[None] = loop.create_future()
        self._all_ended: asyncio.Future[None] = loop.create_future()
        self._held: Any = _NONE
        """The next item, taken from the items and not started yet."""
        self._paced = False
        self._waiting: asyncio.Task[None] | None = None
        self._pumping = False
        self._loop = loop
        self._soon: asyncio.Handle | None = None

    async def run(self) -> tuple[int, EndedBy]:
        """Start operations until the phase ends and wait for those in flight; answer how
        many started and what ended the phase."""
        self._slots.on_room = self.pump_soon
        try:
            self.pump()
            await self._decided
            assert self.ended_by is not None
            if self.ended_by in (EndedBy.ERROR, EndedBy.INTERRUPTED):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(self._all_ended), STOP_GRACE_S)
            else:
                await self._all_ended
        finally:
            self._slots.on_room = None
            for pending in (self._waiting, self._soon):
                if pending is not None:
                    pending.cancel()
        return self.started, self.ended_by

    def crash(self, error: BaseException) -> None:
        """End the share with `error` (not an operation's failure: a fault of this program),
        raised from `run` as `Admission.run` raises what a task raised."""
        for future in (self._decided, self._all_ended):
            if not future.done():
                future.set_exception(error)
                future.exception()

    def pump_soon(self) -> None:
        """`pump` once the callbacks ready now have run."""
        if self._soon is None:
            self._soon = self._loop.call_soon(self._pump_now)

    def _pump_now(self) -> None:
        self._soon = None
        self.pump()

    def pump(self) -> None:
        """Start what may start now."""
        if self._pumping or self._waiting is not None or self._decided.done():
            self._check_all_ended()
            return
        self._pumping = True
        try:
            self._start_more()
        except Exception as exc:
            self.crash(exc)
        finally:
            self._pumping = False
        self._check_all_ended()

    def _start_more(self) -> None:
        admission = self._admission
        while True:
            if self._held is _NONE:
                self._held = next(self._items, _NONE)
                self._paced = False
                if self._held is _NONE:
                    self._end(EndedBy.KEYS)
                    return
            if admission.clock.paused and admission.ended_by() is None:
                self._wait(admission.clock.resumed())
                return
            if not self._paced:
                self._paced = True
                wait = admission.pace(self._held)
                if wait > 0 and admission.ended_by() is None:
                    self._wait(admission._wait(wait))
                    return
            reason = admission.ended_by()
            if reason is not None:
                self._end(reason)
                return
            if not self._slots.try_acquire():
                return
            item, self._held = self._held, _NONE
            self.started += 1
            self._begin(item)

    def _wait(self, until: Awaitable[None]) -> None:
        """Start nothing until `until` is over, then go on."""

        async def wait() -> None:
            try:
                await until
            finally:
                self._waiting = None
            self.pump()

        self._waiting = asyncio.ensure_future(wait())

    def _end(self, reason: EndedBy) -> None:
        self.ended_by = reason
        self._decided.set_result(None)

    def _check_all_ended(self) -> None:
        if self._decided.done() and self._slots.in_flight == 0 and not self._all_ended.done():
            self._all_ended.set_result(None)
