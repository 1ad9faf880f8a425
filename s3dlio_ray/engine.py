"""Runs one phase's stream of object operations under the adaptive concurrency controller.

One Engine owns one S3 client; a Ray actor will own one Engine. The engine keeps `limit`
operations in flight, measures aggregate throughput every `adapt_interval_s`, and lets the
controller resize the limit while the phase runs.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from s3dlio_ray.control import WHOLE_PHASE, Admission, PhaseControl, phase_keys
from s3dlio_ray.errors import ConfigError, S3DlioRayError
from s3dlio_ray.oplog import OpLog
from s3dlio_ray.s3.client import PartGate, S3Client
from s3dlio_ray.s3.errors import S3ConnectionError, S3Error
from s3dlio_ray.s3.signing import CredentialsError
from s3dlio_ray.sizes import ObjectSizes
from s3dlio_ray.stats import OpStats
from s3dlio_ray.tuning.parts import calculate_optimal_part_size
from s3dlio_ray.tuning.scheduler import ConcurrencyController, ConcurrencyPolicy
from s3dlio_ray.workload import ObjectData, VerifyTally

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


class AdaptiveLimiter(PartGate):
    """A counting gate whose limit can change while tasks wait on it."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self.in_flight = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

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
        self.in_flight += 1

    def try_acquire(self) -> bool:
        if self.in_flight < self._limit and not self._waiters:
            self.in_flight += 1
            return True
        return False

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


@dataclass
class ConcurrencySample:
    t_s: float
    limit: int
    in_flight: int
    bytes_per_s: float


class MixedOp(NamedTuple):
    """One operation of a mixed phase; a failure is listed under "OP KEY"."""

    op: str
    key: str

    def __str__(self) -> str:
        return f"{self.op} {self.key}"


@dataclass
class PhaseResult:
    """What one phase did on one engine; plain data, ready for JSON and for merging.

    `dispatched`: operations started; `ended_by`: keys, duration, autoterm or error;
    `keys_written`: set by an executor on a PUT phase's merged result: what the next phase reads.
    """

    phase: str
    elapsed_s: float
    stats: OpStats
    failed: dict[str, str] = field(default_factory=dict)
    verified: int = 0
    verify_failures: int = 0
    concurrency: list[ConcurrencySample] = field(default_factory=list)
    start_concurrency: int = 0
    final_concurrency: int = 0
    peak_concurrency: int = 0
    by_op: dict[str, OpStats] = field(default_factory=dict)
    dispatched: int = 0
    ended_by: str = "keys"
    keys_written: list[str] | None = None

    @property
    def gbps(self) -> float:
        return self.stats.bytes / self.elapsed_s / 1e9 if self.elapsed_s > 0 else 0.0

    @property
    def ops_per_s(self) -> float:
        return self.stats.ops / self.elapsed_s if self.elapsed_s > 0 else 0.0


def is_fatal(error: BaseException) -> bool:
    """Errors that every further request would hit too: stop the phase, tell the user."""
    if isinstance(error, ConfigError | CredentialsError | S3ConnectionError):
        return True
    return isinstance(error, S3Error) and error.code in FATAL_CODES


class BufferPool:
    """Reuses GET buffers so a phase allocates (and page-faults) about one per slot.

    Capacities are rounded up to one of 8 steps per power of two (at most 12.5% spare; a fixed
    10 MiB is exact), so objects of a size distribution share buffers. At most `keep_bytes` wait
    in the pool; beyond that a released buffer is dropped, so a wide distribution cannot hold a
    buffer of every size.
    """

    def __init__(self, keep_bytes: int = 512 * 1024 * 1024) -> None:
        self._free: dict[int, list[bytearray]] = {}
        self._keep = keep_bytes
        self.pooled_bytes = 0

    @staticmethod
    def capacity(size: int) -> int:
        if size <= 8:
            return max(size, 1)
        step = 1 << (size.bit_length() - 4)
        return -(-size // step) * step

    def acquire(self, size: int) -> bytearray:
        capacity = self.capacity(size)
        free = self._free.get(capacity)
        if free:
            self.pooled_bytes -= capacity
            return free.pop()
        return bytearray(capacity)

    def release(self, buffer: bytearray) -> None:
        if self.pooled_bytes + len(buffer) > self._keep:
            return
        self.pooled_bytes += len(buffer)
        self._free.setdefault(len(buffer), []).append(buffer)


class KeyPool:
    """Keys to pick from at random, with O(1) add and discard (swap with the last)."""

    def __init__(self, keys: Iterable[str]) -> None:
        self._keys = list(keys)
        self._index = {key: i for i, key in enumerate(self._keys)}

    def __len__(self) -> int:
        return len(self._keys)

    def choice(self, rng: random.Random) -> str:
        return self._keys[rng.randrange(len(self._keys))]

    def add(self, key: str) -> None:
        if key not in self._index:
            self._index[key] = len(self._keys)
            self._keys.append(key)

    def discard(self, key: str) -> None:
        index = self._index.pop(key, None)
        if index is None:
            return
        last = self._keys.pop()
        if index < len(self._keys):
            self._keys[index] = last
            self._index[last] = index


@dataclass
class EngineSnapshot:
    """The running phase as it stands: cumulative since the phase began."""

    phase: str
    stats: OpStats
    limit: int
    in_flight: int


ProgressHook = Callable[[str, OpStats, ConcurrencySample], None]


class Engine:
    """One S3 client driven by one concurrency controller per phase."""

    def __init__(
        self,
        client: S3Client,
        policy_for: Callable[[str], ConcurrencyPolicy],
        adapt_interval_s: float = 0.5,
        part_size: int = 10 * 1024 * 1024,
        op_log: OpLog | None = None,
    ) -> None:
        self.client = client
        self._op_log = op_log
        if op_log is not None:
            client.on_request = op_log.record
        self._policy_for = policy_for
        self._interval = adapt_interval_s
        self._part_size = part_size
        self._buffers = BufferPool()
        self._stats: OpStats | None = None
        self._live: tuple[str, OpStats, AdaptiveLimiter] | None = None
        self._throttled = False
        self._admission: Admission | None = None
        self.on_progress: ProgressHook | None = None
        client.on_retry = self._on_retry

    def snapshot(self) -> EngineSnapshot | None:
        """A copy of the running phase's statistics, or None between phases."""
        if self._live is None:
            return None
        phase, stats, limiter = self._live
        return EngineSnapshot(phase, copy.deepcopy(stats), limiter.limit, limiter.in_flight)

    def stop(self) -> None:
        """End the running phase early (autoterm): start nothing new, let what runs finish."""
        if self._admission is not None:
            self._admission.stop_requested = True

    async def aclose(self) -> None:
        await self.client.aclose()
        if self._op_log is not None:
            self._op_log.close()

    def _on_retry(self, operation: str, throttled: bool) -> None:
        if self._stats is not None:
            self._stats.retries += 1
        self._throttled = self._throttled or throttled

    async def put(
        self,
        bucket: str,
        keys: Sequence[str],
        sizes: ObjectSizes,
        data: ObjectData,
        control: PhaseControl = WHOLE_PHASE,
    ) -> PhaseResult:
        async def put_one(key: str, gate: AdaptiveLimiter) -> tuple[int, float | None]:
            size = sizes.of(key)
            part_size = calculate_optimal_part_size(size, self._part_size)
            if size > part_size:
                await self.client.put_object_multipart(
                    bucket, key, size, lambda o, n: data.segments(key, o, n), part_size, gate
                )
            else:
                await self.client.put_object(bucket, key, data.segments(key, 0, size))
            return size, None

        return await self._run("put", phase_keys("put", keys, control), put_one, control, sizes.of)

    async def get(
        self,
        bucket: str,
        keys: Sequence[str],
        sizes: ObjectSizes,
        data: ObjectData,
        verify: bool = True,
        control: PhaseControl = WHOLE_PHASE,
    ) -> PhaseResult:
        tally = VerifyTally(data)

        async def get_one(key: str, gate: AdaptiveLimiter) -> tuple[int, float | None]:
            size = sizes.of(key)
            part_size = calculate_optimal_part_size(size, self._part_size)
            buffer = self._buffers.acquire(size)
            try:
                if size > part_size:
                    result = await self.client.get_object_ranged(
                        bucket,
                        key,
                        part_size,
                        lambda n: buffer if n <= len(buffer) else bytearray(n),
                        gate,
                    )
                else:
                    result = await self.client.get_object(bucket, key, into=buffer)
                if verify:
                    tally.check(key, result.body, size)
                return len(result.body), result.ttfb_s
            finally:
                self._buffers.release(buffer)

        phase = await self._run("get", phase_keys("get", keys, control), get_one, control, sizes.of)
        phase.verified, phase.verify_failures = tally.verified, tally.failures
        return phase

    async def mixed(
        self,
        bucket: str,
        keys: Sequence[str],
        sizes: ObjectSizes,
        data: ObjectData,
        weights: Mapping[str, float],
        control: PhaseControl,
        new_key_prefix: str,
        seed: int,
        verify: bool = True,
    ) -> PhaseResult:
        """GET/PUT/STAT/DELETE chosen by `weights` for the control's duration over a key pool.

        New objects join the pool; a deleted key leaves it; a key in use is not picked again until
        its request ends, so a GET never races a DELETE of the same key.
        """
        if not control.duration_s:
            raise ConfigError("phases: mixed runs for a time: set duration_s (--duration SECONDS)")
        rng = random.Random(seed)
        ops, cumulative = list(weights), list(itertools.accumulate(weights.values()))
        pool, in_use = KeyPool(keys), set()
        counter = itertools.count()
        by_op = {op: OpStats() for op in ops}
        tally = VerifyTally(data)

        def pick() -> str | None:
            for _ in range(8):
                if not pool:
                    return None
                key = pool.choice(rng)
                if key not in in_use:
                    in_use.add(key)
                    return key
            return None

        def choices() -> Iterator[MixedOp]:
            while True:
                op = rng.choices(ops, cum_weights=cumulative)[0]
                key = None if op == "put" else pick()
                if key is None:
                    op, key = "put", f"{new_key_prefix}{next(counter):08d}"
                yield MixedOp(op, key)

        def cost(choice: MixedOp) -> int:
            return sizes.of(choice.key) if choice.op in ("put", "get") else 0

        async def one(choice: MixedOp, gate: AdaptiveLimiter) -> tuple[int, float | None]:
            op, key = choice
            started = time.perf_counter()
            try:
                nbytes, ttfb = 0, None
                if op == "put":
                    nbytes = sizes.of(key)
                    await self.client.put_object(bucket, key, data.segments(key, 0, nbytes))
                elif op == "get":
                    result = await self.client.get_object(bucket, key)
                    if verify:
                        tally.check(key, result.body, sizes.of(key))
                    nbytes, ttfb = len(result.body), result.ttfb_s
                elif op == "stat":
                    await self.client.head_object(bucket, key)
                else:
                    pool.discard(key)
                    await self.client.delete_objects(bucket, [key])
            finally:
                in_use.discard(key)
            if op == "put":
                pool.add(key)
            by_op[op].record(nbytes, time.perf_counter() - started, ttfb)
            return nbytes, ttfb

        result = await self._run("mixed", choices(), one, control, cost)
        result.by_op = by_op
        result.verified, result.verify_failures = tally.verified, tally.failures
        return result

    async def _run(
        self,
        phase: str,
        keys: Iterable[Any],
        do_one: Callable[[Any, AdaptiveLimiter], Awaitable[tuple[int, float | None]]],
        control: PhaseControl,
        cost: Callable[[Any], int],
    ) -> PhaseResult:
        """Start `do_one` for each item while the limiter has room, until the items run out,
        the duration ends, a stop is asked for, or an error says every request would fail."""
        controller = ConcurrencyController(self._policy_for(phase))
        limiter = AdaptiveLimiter(controller.limit)
        stats = OpStats()
        result = PhaseResult(phase, 0.0, stats, start_concurrency=controller.limit)
        self._stats, self._throttled = stats, False
        self._live = (phase, stats, limiter)
        admission = self._admission = Admission(control, cost)
        started = admission.started

        async def one(key: str) -> None:
            result.peak_concurrency = max(result.peak_concurrency, limiter.in_flight)
            t0 = time.perf_counter()
            try:
                nbytes, ttfb = await do_one(key, limiter)
            except S3DlioRayError as exc:
                stats.errors += 1
                result.failed[str(key)] = str(exc)
                if is_fatal(exc) and admission.fatal is None:
                    admission.fatal = exc
            else:
                stats.record(nbytes, time.perf_counter() - t0, ttfb)
            finally:
                limiter.release()

        ticker = asyncio.ensure_future(self._adapt(phase, controller, limiter, result, started))
        try:
            result.dispatched, result.ended_by = await admission.run(
                keys, limiter.acquire, limiter.release, one
            )
        finally:
            ticker.cancel()
            self._stats = None
            self._live = None
            self._admission = None
        result.elapsed_s = time.perf_counter() - started
        result.final_concurrency = limiter.limit
        if admission.fatal is not None:
            raise admission.fatal
        return result

    async def _adapt(
        self,
        phase: str,
        controller: ConcurrencyController,
        limiter: AdaptiveLimiter,
        result: PhaseResult,
        started: float,
    ) -> None:
        stats = result.stats
        last_bytes, last_ops, last_total_s, last_t = 0, 0, 0.0, time.perf_counter()
        latency = 0.0
        while True:
            await asyncio.sleep(self._interval)
            now = time.perf_counter()
            nbytes, ops, elapsed = stats.bytes - last_bytes, stats.ops - last_ops, now - last_t
            if ops:
                latency = (stats.latency.total_s - last_total_s) / ops
            rate = nbytes / elapsed
            last_bytes, last_ops, last_total_s, last_t = (
                stats.bytes,
                stats.ops,
                stats.latency.total_s,
                now,
            )
            throttled, self._throttled = self._throttled, False
            limiter.set_limit(controller.observe(nbytes, ops, elapsed, throttled, latency))
            sample = ConcurrencySample(now - started, limiter.limit, limiter.in_flight, rate)
            result.concurrency.append(sample)
            if self.on_progress is not None:
                self.on_progress(phase, stats, sample)
