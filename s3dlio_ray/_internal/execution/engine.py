"""Runs one share of a phase under the adaptive concurrency controller: the one run loop.

One Engine owns one object store (this project's S3 client, or the boto3 baseline) and runs the
transfers of every phase through the same loop: admission (rate limit, duration, stop), a
limiter the controller resizes every `adapt_interval_s` from measured throughput, and the fatal
error that ends a share for either store alike. What a phase does per operation lives in its own
module under `phases/`; the engine only starts, times and counts. A closed-loop share whose
store and transfer can begin operations without waiting (the small-request path: a
`QuickStore`, a `QuickTransfer`) runs them from callbacks through a `Driver`, the rest each in a
task through `Admission.run`; both count alike.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field

from s3dlio_ray._internal.execution.admission import (
    WHOLE_PHASE,
    ActiveClock,
    Admission,
    Schedule,
    ShareLimits,
)
from s3dlio_ray._internal.execution.phases import transfer_for
from s3dlio_ray._internal.execution.phases.transfer import (
    Done,
    PhaseSpec,
    QuickTransfer,
    Transfer,
)
from s3dlio_ray._internal.model.bottleneck import cpu_saturated
from s3dlio_ray._internal.model.errors import ConfigError, S3DlioRayError
from s3dlio_ray._internal.model.open_loop import Arrivals, OpenLoopStats
from s3dlio_ray._internal.model.resources import HostReading
from s3dlio_ray._internal.model.results import ConcurrencySample, ShareResult
from s3dlio_ray._internal.model.stats import OpStats
from s3dlio_ray._internal.model.utilization import UtilizationProgress
from s3dlio_ray._internal.model.vocabulary import EndedBy, Phase
from s3dlio_ray._internal.settings.changes import Overrides
from s3dlio_ray._internal.storage.files import FileError
from s3dlio_ray._internal.storage.machine import HostProbe
from s3dlio_ray._internal.storage.object_store import ObjectStore, QuickStore
from s3dlio_ray._internal.storage.s3.client import PartGate
from s3dlio_ray._internal.storage.s3.errors import S3ConnectionError, S3Error
from s3dlio_ray._internal.storage.s3.signing import CredentialsError
from s3dlio_ray._internal.tuning.cluster import Steer
from s3dlio_ray._internal.tuning.scheduler import ConcurrencyController, ConcurrencyPolicy, Mode

FATAL_CODES = frozenset(
    {
        "SignatureDoesNotMatch",
        "InvalidAccessKeyId",
        "ExpiredToken",
        "InvalidToken",
        "AccessDenied",
        "AllAccessDisabled",
        "NoSuchBucket",
    }
)


PolicyFor = Callable[[Phase, Overrides], ConcurrencyPolicy]
"""A phase's concurrency policy, under the run's changes so far."""


class AdaptiveLimiter(PartGate):
    """A counting gate whose limit can change while tasks wait on it; `on_room` is called
    whenever a slot frees or the limit changes and no task waits (a Driver's pump)."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self.in_flight = 0
        self.peak_in_flight = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self.on_room: Callable[[], None] | None = None

    @property
    def limit(self) -> int:
        return self._limit

    def set_limit(self, limit: int) -> None:
        self._limit = limit
        self._wake()

    async def acquire(self) -> None:
        while self.in_flight >= self._limit:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
                raise
        self._take()

    def try_acquire(self) -> bool:
        if self.in_flight < self._limit and not self._waiters:
            self._take()
            return True
        return False

    def _take(self) -> None:
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)

    def release(self) -> None:
        self.in_flight -= 1
        self._wake()

    def _wake(self) -> None:
        free = self._limit - self.in_flight
        while free > 0 and self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                free -= 1
        if self.on_room is not None and not self._waiters:
            self.on_room()


def open_loop_policy(policy: ConcurrencyPolicy) -> ConcurrencyPolicy:
    """An open-loop share's concurrency is a cap, not a control: operations start when due, up
    to the fixed concurrency or, where it adapts, its highest."""
    cap = policy.initial if policy.mode is Mode.FIXED else policy.maximum
    return ConcurrencyPolicy(Mode.FIXED, cap, minimum=1, maximum=max(cap, policy.maximum))


def _schedule(transfer: Transfer, limits: ShareLimits, task_id: int) -> Schedule | None:
    """The share's open-loop schedule: the transfer's own (a replay's), or its share of the
    phase's offered load, from now; None: closed loop."""
    own: Schedule | None = getattr(transfer, "schedule", None)
    if own is not None or limits.arrival is None:
        return own
    return Arrivals(
        limits.arrival, task_id, phase=(task_id * 0.618) % 1, origin=time.perf_counter()
    )


def _pace_to_target(admission: Admission, policy: ConcurrencyPolicy) -> None:
    """An actor's own target (`target_gbps`) is a rate it keeps to, not only one it stops
    climbing at: its minimum concurrency alone may move more."""
    if policy.mode is Mode.TARGET:
        admission.steer(policy.target_bytes_per_s)


def is_fatal(error: BaseException) -> bool:
    """Errors that every further request would hit too: stop the phase, tell the user."""
    if isinstance(error, ConfigError | CredentialsError | S3ConnectionError):
        return True
    if isinstance(error, FileError):
        return error.fatal
    return isinstance(error, S3Error) and error.code in FATAL_CODES


@dataclass(frozen=True)
class EngineSnapshot:
    """The running share as it stands: cumulative since the share began; `fatal` once an error
    every further request would hit has ended it."""

    phase: Phase
    stats: OpStats
    limit: int
    in_flight: int
    fatal: str | None = None
    by_endpoint: dict[str, OpStats] = field(default_factory=dict)
    training: UtilizationProgress | None = None
    """A train phase's accelerators, cumulative (compute and counted time, samples, epoch)."""
    throttles: int = 0
    """Retries the endpoint asked for by throttling (503 SlowDown, 5xx, timeouts)."""
    by_op: dict[str, OpStats] = field(default_factory=dict)
    """A mixed phase's statistics per operation within it, cumulative."""
    host: HostReading | None = None
    """This process's and its node's counters, read with the snapshot."""
    loop_lag_s: float = 0.0
    loop_ticks: int = 0
    """How late the controller's ticks woke, summed over the engine's life, and how many."""
    cpu_bound: bool = False
    """The engine's own CPU limited it in its latest interval (the cluster controller holds)."""
    host_at_start: HostReading | None = None
    """The same counters when the share started: the first second's baseline."""


@dataclass
class _Live:
    phase: Phase
    stats: OpStats
    limiter: AdaptiveLimiter
    admission: Admission
    transfer: Transfer
    controller: ConcurrencyController
    by_endpoint: dict[str, OpStats] = field(default_factory=dict)
    throttles: int = 0
    """Retries the endpoint asked for by throttling, so far."""
    host_at_start: HostReading | None = None

    fresh: dict[str, OpStats] = field(default_factory=dict)
    """Operations ended since the last `flush`, per endpoint: each is recorded once here, not
    in the share's and its endpoint's statistics both."""

    def at(self, endpoint: str) -> OpStats:
        stats = self.by_endpoint.get(endpoint)
        if stats is None:
            stats = self.by_endpoint[endpoint] = OpStats()
        return stats

    def ended(self, endpoint: str, done: Done, latency_s: float) -> None:
        """An operation that succeeded, counted at the next `flush`."""
        fresh = self.fresh.get(endpoint)
        if fresh is None:
            fresh = self.fresh[endpoint] = OpStats()
        fresh.record(done.nbytes, latency_s, done.ttfb_s, done.objects)

    def flush(self) -> None:
        """Count what ended since the last flush in the share's and the endpoints' statistics
        (before anything reads them)."""
        for endpoint, fresh in self.fresh.items():
            self.stats.merge(fresh)
            self.at(endpoint).merge(fresh)
        self.fresh.clear()


class Engine:
    """One object store driven by one concurrency controller per share."""

    def __init__(
        self,
        store: ObjectStore,
        policy_for: PolicyFor,
        adapt_interval_s: float = 0.5,
        probe: HostProbe | None = None,
    ) -> None:
        self.store = store
        self._policy_for = policy_for
        self._interval = adapt_interval_s
        self._probe = probe
        self._live: _Live | None = None
        self.loop_lag_s = 0.0
        self.loop_ticks = 0
        self.cpu_bound = False
        self.overrides = Overrides()
        """The run's latest changes this engine has taken."""
        store.on_retry = self._on_retry

    def snapshot(self) -> EngineSnapshot | None:
        """A copy of the running share's statistics, or None between shares."""
        live = self._live
        if live is None:
            return None
        live.flush()
        fatal = live.admission.fatal
        return EngineSnapshot(
            live.phase,
            live.stats.copy(),
            live.limiter.limit,
            live.limiter.in_flight,
            None if fatal is None else str(fatal),
            {endpoint: stats.copy() for endpoint, stats in live.by_endpoint.items()},
            live.transfer.progress() if hasattr(live.transfer, "progress") else None,
            live.throttles,
            {op: stats.copy() for op, stats in live.transfer.outcome().by_op.items()}
            if live.phase in (Phase.MIXED, Phase.REPLAY)
            else {},
            self._probe.read() if self._probe is not None else None,
            self.loop_lag_s,
            self.loop_ticks,
            self.cpu_bound,
            live.host_at_start,
        )

    def steer(self, steer: Steer) -> None:
        """The driver's ceiling and pace for the running share (the cluster controller's)."""
        live = self._live
        if live is not None:
            live.limiter.set_limit(live.controller.assign(steer.ceiling))
            live.admission.steer(steer.bytes_per_s)

    def stop(self, reason: EndedBy = EndedBy.AUTOTERM) -> None:
        """End the running share early: start nothing new, let what runs finish."""
        if self._live is not None:
            self._live.admission.stop(reason)

    def adjust(self, limits: ShareLimits) -> None:
        """Take the run's changes (limits.overrides), if newer than those taken: the running
        share gets a new concurrency policy (from the limit it has, where the policy adapts), its
        new share of the rate cap, and is paused or resumed."""
        if limits.overrides.version <= self.overrides.version:
            return
        self.overrides = limits.overrides
        live = self._live
        if live is None:
            return
        live.admission.adjust(limits)
        policy = self._policy_for(live.phase, limits.overrides)
        running = live.controller.policy
        if policy.mode in (Mode.AUTO, Mode.CLUSTER):
            # An adapting controller goes on from the limit it has, within the new bounds.
            keep = min(max(live.limiter.limit, policy.minimum), policy.maximum)
            policy = dataclasses.replace(policy, initial=keep)
            running = dataclasses.replace(running, initial=keep)
        if policy != running:
            live.controller = ConcurrencyController(policy)
            _pace_to_target(live.admission, policy)
            live.limiter.set_limit(live.controller.limit)

    async def aclose(self) -> None:
        await self.store.aclose()

    def _on_retry(self, throttled: bool) -> None:
        live = self._live
        if live is not None:
            live.stats.retries += 1
            live.at(self.store.answered_by()).retries += 1
            live.throttles += throttled

    async def run_share(
        self,
        spec: PhaseSpec,
        keys: Sequence[str],
        limits: ShareLimits = WHOLE_PHASE,
        task_id: int = 0,
    ) -> ShareResult:
        """Run this engine's share `keys` of the phase `spec` describes, on a clock of its own
        that a pause stops."""
        limits = dataclasses.replace(limits, clock=ActiveClock(limits.overrides.paused))
        return await self.run(transfer_for(spec, keys, limits, task_id), limits, task_id)

    async def run(self, transfer: Transfer, limits: ShareLimits, task_id: int = 0) -> ShareResult:
        """Start the transfer's operations while the limiter has room, until they run out, the
        duration ends, a stop is asked for, or an error says every request would fail (`fatal`
        in the answer); answer what the share did."""
        phase = transfer.phase
        store = self.store
        if limits.overrides.version > self.overrides.version:
            self.overrides = limits.overrides
        schedule = _schedule(transfer, limits, task_id)
        open_loop = None if schedule is None else OpenLoopStats()
        operations = transfer.operations()
        quick = (
            store.quick()
            if schedule is None
            and isinstance(transfer, QuickTransfer)
            and not isinstance(operations, AsyncIterator)
            else None
        )
        policy = self._policy_for(phase, self.overrides)
        controller = ConcurrencyController(policy if schedule is None else open_loop_policy(policy))
        start_concurrency = controller.limit
        limiter = AdaptiveLimiter(start_concurrency)
        stats = OpStats()
        failed: dict[str, str] = {}
        admission = Admission(limits, transfer.cost)
        _pace_to_target(admission, controller.policy)
        live = self._live = _Live(phase, stats, limiter, admission, transfer, controller)
        if schedule is not None:
            await admission.start_at(schedule.origin)
        if self._probe is not None:
            live.host_at_start = self._probe.read()
        samples: list[ConcurrencySample] = []

        async def acquire() -> None:
            if not limiter.try_acquire():
                if open_loop is not None:
                    open_loop.capped += 1
                await limiter.acquire()

        def lost(operation: object, exc: S3DlioRayError) -> None:
            stats.errors += 1
            live.at(store.answered_by()).errors += 1
            failed[str(operation)] = str(exc)
            if is_fatal(exc) and admission.fatal is None:
                admission.fatal = exc

        async def one(operation: object, due: float | None) -> None:
            t0 = time.perf_counter()
            try:
                done = await transfer.perform(operation, store, limiter)
            except S3DlioRayError as exc:
                lost(operation, exc)
            else:
                end = time.perf_counter()
                if due is not None and open_loop is not None and schedule is not None:
                    sent = done.sent_s or t0
                    name = str(getattr(operation, "op", phase)).upper()
                    open_loop.record(name, sent - due, end - sent, int(sent - schedule.origin))
                live.ended(store.answered_by(), done, end - t0)
            finally:
                limiter.release()

        ticker = asyncio.ensure_future(self._adapt(live, samples))
        try:
            if quick is None:
                dispatched, ended_by = await admission.run(
                    operations, acquire, limiter.release, one, schedule
                )
            else:
                assert not isinstance(operations, AsyncIterator)
                dispatched, ended_by = await self._drive(live, operations, quick, lost)
        finally:
            ticker.cancel()
            self._live = None
            live.flush()
        outcome = transfer.outcome()
        failed.update(outcome.failed)
        stats.errors += len(outcome.failed)
        return ShareResult(
            phase=phase,
            elapsed_s=admission.active_s(),
            stats=stats,
            ended_by=ended_by,
            dispatched=dispatched,
            failed=failed,
            verified=outcome.verified,
            verify_failures=outcome.verify_failures,
            samples=tuple(samples),
            start_concurrency=start_concurrency,
            final_concurrency=limiter.limit,
            peak_in_flight=limiter.peak_in_flight,
            by_op=outcome.by_op,
            by_endpoint=live.by_endpoint or {store.endpoint: stats},
            checks=outcome.checks,
            listed=None if outcome.listed is None else (outcome.listed.keys, outcome.listed.sizes),
            source_address=store.source_address,
            fatal=None if admission.fatal is None else str(admission.fatal),
            training=outcome.training,
            buffered_peak=outcome.buffered_peak,
            digests=outcome.digests,
            throttles=live.throttles,
            open_loop=open_loop,
            missing=outcome.missing,
        )

    async def _drive(
        self,
        live: _Live,
        operations: Iterable[object],
        quick: QuickStore,
        lost: Callable[[object, S3DlioRayError], None],
    ) -> tuple[int, EndedBy]:
        """The share's operations begun from callbacks (`Driver`), each counted as `run`'s
        tasks count theirs; what is still in flight when the share ends is given up."""
        transfer, limiter, store = live.transfer, live.limiter, self.store
        assert isinstance(transfer, QuickTransfer)
        over = False

        def begin(operation: object) -> None:
            t0 = time.perf_counter()
            ended = False  # an operation counts, and frees its slot, once

            def done(result: Done) -> None:
                nonlocal ended
                if not (over or ended):
                    ended = True
                    live.ended(store.answered_by(), result, time.perf_counter() - t0)
                    limiter.release()

            def failed(exc: Exception) -> None:
                nonlocal ended
                if over or ended:
                    return
                ended = True
                if not isinstance(exc, S3DlioRayError):
                    driver.crash(exc)
                    return
                lost(operation, exc)
                limiter.release()

            transfer.begin(operation, quick, limiter, done, failed)

        driver = live.admission.driver(operations, limiter, begin)
        try:
            return await driver.run()
        finally:
            over = True
            quick.cancel()

    def _cpu_bound(self, late_s: float, cpu_s: float, elapsed_s: float) -> bool:
        """This process's CPU is what limits it, by the client-cpu rule's test: of the CPU
        one process may use (a core, or less under a cgroup quota), its loop's lateness, the
        quota's stops."""
        probe = self._probe
        one = min(1.0, probe.capacity_cores) if probe is not None else 1.0
        quota = probe.quota_throttled_since() if probe is not None else None
        return cpu_saturated(cpu_s / elapsed_s / one, late_s, quota)

    async def _adapt(self, live: _Live, samples: list[ConcurrencySample]) -> None:
        stats, limiter = live.stats, live.limiter
        started = time.perf_counter()
        last_bytes, last_ops, last_requests, last_total_s, last_throttles = 0, 0, 0, 0.0, 0
        last_t, last_cpu = time.perf_counter(), time.process_time()
        latency = 0.0
        while True:
            await asyncio.sleep(self._interval)
            live.flush()
            now, cpu = time.perf_counter(), time.process_time()
            nbytes, ops, elapsed = stats.bytes - last_bytes, stats.ops - last_ops, now - last_t
            late = max(0.0, elapsed - self._interval)
            self.loop_lag_s += late
            self.loop_ticks += 1
            cpu_bound = self.cpu_bound = self._cpu_bound(late, cpu - last_cpu, elapsed)
            last_cpu = cpu
            requests = stats.latency.count - last_requests
            if requests:
                latency = (stats.latency.total_s - last_total_s) / requests
            last_bytes, last_ops, last_requests, last_total_s, last_t = (
                stats.bytes,
                stats.ops,
                stats.latency.count,
                stats.latency.total_s,
                now,
            )
            throttled, last_throttles = live.throttles > last_throttles, live.throttles
            limit = live.controller.observe(nbytes, ops, elapsed, throttled, latency, cpu_bound)
            limiter.set_limit(limit)
            samples.append(
                ConcurrencySample(
                    now - started,
                    limiter.limit,
                    limiter.in_flight,
                    nbytes / elapsed,
                    live.controller.held_by,
                )
            )
