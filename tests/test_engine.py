"""The engine's one run loop, admission, and the executor's reassignment, without Ray or a server.

`MemoryStore` is an ObjectStore (the interface the engine takes) that keeps objects in a dict, so
these tests see exactly which operations the loop started and in what state it left the store.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from conftest import recorded

from s3dlio_ray._internal.execution.admission import Admission, ShareLimits
from s3dlio_ray._internal.execution.engine import Engine, EngineSnapshot
from s3dlio_ray._internal.execution.host import EngineHost
from s3dlio_ray._internal.execution.phases.transfer import PhaseSpec, ReplaySpec
from s3dlio_ray._internal.live.executor import PhaseExecutor
from s3dlio_ray._internal.live.local_pool import LocalWorker
from s3dlio_ray._internal.live.pool import ask_each
from s3dlio_ray._internal.model.content import ObjectData
from s3dlio_ray._internal.model.keys import KeyRange
from s3dlio_ray._internal.model.results import ShareResult
from s3dlio_ray._internal.model.sizes import ObjectSizes
from s3dlio_ray._internal.model.vocabulary import EndedBy, Phase
from s3dlio_ray._internal.replay.formats import Logged
from s3dlio_ray._internal.replay.plan import OwnNames, plan
from s3dlio_ray._internal.storage.object_store import InTasks
from s3dlio_ray._internal.storage.s3.errors import S3Error
from s3dlio_ray._internal.tuning.pacing import RateLimit
from s3dlio_ray._internal.tuning.scheduler import ConcurrencyPolicy, Mode

SIZES = ObjectSizes.fixed(1000)
FIXED = ConcurrencyPolicy(Mode.FIXED, 4)


class MemoryStore:
    """Objects in a dict; `refuse` maps a key to the S3 error code its requests get. With
    `fast` the engine drives it the way it drives a store's small-request path (begun without
    waiting, ended in callbacks: `quick`); the `path` fixture runs every test both ways."""

    endpoint = "memory://"
    source_address = None
    fast = False

    def quick(self):
        return InTasks(self) if self.fast else None

    def answered_by(self) -> str:
        return self.endpoint

    def __init__(self, refuse: dict[str, str] | None = None, delay_s: float = 0.0) -> None:
        self.objects: dict[str, bytes] = {}
        self.calls: list[tuple[str, str]] = []
        self.refuse = refuse or {}
        self.delay_s = delay_s
        self.on_retry = None

    async def _enter(self, op: str, key: str) -> None:
        self.calls.append((op, key))
        await asyncio.sleep(self.delay_s)
        if key in self.refuse:
            raise S3Error(op, key, 403, self.refuse[key])

    async def put(self, bucket, key, size, data, gate):
        await self._enter("put", key)
        self.objects[key] = data.content(key, size)

    async def get(self, bucket, key, size, gate, check, checksum=False):
        await self._enter("get", key)
        body = self.objects.get(key)
        if body is None:
            raise S3Error("GetObject", key, 404, "NoSuchKey")
        if check is not None:
            check(memoryview(body), {})
        return len(body), 0.0

    async def stat(self, bucket, key):
        await self._enter("stat", key)
        return len(self.objects[key])

    async def delete(self, bucket, key):
        await self._enter("delete", key)
        self.objects.pop(key, None)

    async def aclose(self):
        pass


@pytest.fixture(autouse=True, params=["general", "fast"])
def path(request, monkeypatch):
    """Each engine test through both paths: operations as tasks, and begun from callbacks."""
    monkeypatch.setattr(MemoryStore, "fast", request.param == "fast")
    return request.param


def spec(phase: Phase, **options) -> PhaseSpec:
    return PhaseSpec(phase, "bucket", SIZES, 7, **options)


def keys(n: int) -> KeyRange:
    return KeyRange.of("", "r", n)


def test_put_then_get_stores_exact_content_and_verifies_every_object():
    store = MemoryStore()
    engine = Engine(store, lambda phase, overrides: FIXED)

    async def main():
        put = await engine.run_share(spec(Phase.PUT), keys(40))
        get = await engine.run_share(spec(Phase.GET), keys(40))
        return put, get

    put, get = asyncio.run(main())
    data = ObjectData(7)
    assert store.objects == {k: data.content(k, 1000) for k in keys(40)}
    assert (put.stats.ops, put.stats.bytes, put.dispatched, put.ended_by) == (
        40,
        40_000,
        40,
        EndedBy.KEYS,
    )
    assert (get.verified, get.verify_failures, get.stats.bytes) == (40, 0, 40_000)
    assert put.peak_in_flight <= 4 and put.final_concurrency == 4
    assert put.by_endpoint == {"memory://": put.stats}


def test_a_wrong_object_is_a_verification_failure_not_a_pass():
    store = MemoryStore()
    engine = Engine(store, lambda phase, overrides: FIXED)
    asyncio.run(engine.run_share(spec(Phase.PUT), keys(5)))
    store.objects["r/obj-00000002"] = store.objects["r/obj-00000003"]
    get = asyncio.run(engine.run_share(spec(Phase.GET), keys(5)))
    assert (get.verified, get.verify_failures) == (4, 1)
    assert list(get.failed) == ["r/obj-00000002"] and get.stats.errors == 1


def test_an_error_for_one_key_is_counted_and_the_phase_goes_on():
    store = MemoryStore()
    engine = Engine(store, lambda phase, overrides: FIXED)
    get = asyncio.run(engine.run_share(spec(Phase.GET), keys(10)))
    assert get.stats.errors == 10 and len(get.failed) == 10
    assert "NoSuchKey" in get.failed["r/obj-00000000"] and get.ended_by == EndedBy.KEYS


def test_a_fatal_error_stops_starting_operations_and_keeps_what_was_measured():
    store = MemoryStore(refuse={"r/obj-00000003": "AccessDenied"}, delay_s=0.01)
    engine = Engine(store, lambda phase, overrides: FIXED)
    put = asyncio.run(engine.run_share(spec(Phase.PUT), keys(200)))
    assert (
        put.ended_by == EndedBy.ERROR
        and "AccessDenied" in put.fatal
        and "r/obj-00000003" in put.fatal
    )
    assert put.dispatched == len(store.calls) < 20
    assert put.stats.ops == len(store.objects) >= 3 and list(put.failed) == ["r/obj-00000003"]
    assert engine.snapshot() is None


def test_stop_ends_a_timed_share_early_with_its_reason():
    store = MemoryStore(delay_s=0.005)
    engine = Engine(store, lambda phase, overrides: FIXED)

    async def main():
        running = asyncio.ensure_future(
            engine.run_share(spec(Phase.GET, duration_s=30), keys(5), ShareLimits(30))
        )
        await asyncio.sleep(0.2)
        snapshot = engine.snapshot()
        engine.stop(EndedBy.INTERRUPTED)
        return snapshot, await running

    store.objects = {k: ObjectData(7).content(k, 1000) for k in keys(5)}
    snapshot, get = asyncio.run(main())
    assert snapshot.phase == Phase.GET and snapshot.stats.ops > 0
    assert get.ended_by == EndedBy.INTERRUPTED and get.elapsed_s < 2
    assert get.stats.ops == get.dispatched and get.verify_failures == 0


def test_admission_paces_to_the_rate_and_stops_at_the_deadline():
    async def main():
        admission = Admission(ShareLimits(1.0, RateLimit("ops", 50)), lambda item: 1)
        slots = asyncio.Semaphore(1000)

        async def start(item, due):
            slots.release()

        return await admission.run(range(10_000), slots.acquire, slots.release, start)

    started = time.perf_counter()
    dispatched, ended_by = asyncio.run(main())
    assert ended_by == EndedBy.DURATION
    assert 40 <= dispatched <= 60 and time.perf_counter() - started < 1.5


class Slots:
    """An in-flight limit as a Driver takes it; each operation ends 10 ms after it began."""

    def __init__(self, limit: int) -> None:
        self.limit, self.in_flight, self.peak = limit, 0, 0
        self.on_room = None

    def try_acquire(self) -> bool:
        if self.in_flight >= self.limit:
            return False
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        return True

    def release(self) -> None:
        self.in_flight -= 1
        if self.on_room is not None:
            self.on_room()


def test_a_driver_keeps_the_limit_paces_and_waits_out_a_pause():
    async def main():
        admission = Admission(ShareLimits(rate=RateLimit("ops", 200)), lambda item: 1)
        admission.clock.pause(True)
        slots, begun = Slots(3), []
        loop = asyncio.get_running_loop()

        def begin(item):
            begun.append((item, time.perf_counter()))
            loop.call_later(0.01, slots.release)

        driver = admission.driver(range(40), slots, begin)
        running = asyncio.ensure_future(driver.run())
        await asyncio.sleep(0.2)
        assert begun == [] and not running.done()
        resumed = time.perf_counter()
        admission.clock.pause(False)
        admission.clock.wake()
        return await running, begun, slots, resumed

    (started, ended_by), begun, slots, resumed = asyncio.run(main())
    assert (started, ended_by) == (40, EndedBy.KEYS)
    assert [item for item, _ in begun] == list(range(40)) and slots.peak == 3
    assert slots.in_flight == 0 and begun[0][1] >= resumed
    # 200 ops/s after a burst of at most 50 ms: 40 take about 0.15 s or more.
    assert begun[-1][1] - begun[0][1] >= 0.1


def test_a_driver_stops_when_asked_and_raises_what_a_callback_broke():
    async def main():
        admission = Admission(ShareLimits(), lambda item: 0)
        slots = Slots(2)
        loop = asyncio.get_running_loop()

        def begin(item):
            if item == 5:
                driver.crash(RuntimeError("a fault of the program"))
            loop.call_later(0.01, slots.release)

        driver = admission.driver(range(100), slots, begin)
        with pytest.raises(RuntimeError, match="a fault of the program"):
            await driver.run()
        stopping = Admission(ShareLimits(), lambda item: 0)
        other = Slots(2)
        endless = stopping.driver(
            iter(int, 1), other, lambda item: loop.call_later(0.01, other.release)
        )
        running = asyncio.ensure_future(endless.run())
        await asyncio.sleep(0.1)
        stopping.stop(EndedBy.INTERRUPTED)
        return await running

    started, ended_by = asyncio.run(main())
    assert ended_by is EndedBy.INTERRUPTED and started >= 4


class Lost(Exception):
    """What the test pool says a lost worker raises (Ray's RayActorError, in a real pool)."""


class DyingWorker:
    name, node = "n2/0", "n2"

    async def run_share(self, task_id, spec, keys, control):
        await asyncio.sleep(0.05)
        raise Lost

    async def snapshot(self, steer=None, adjust=None):
        return -1, None

    def stop(self, task_id, reason):
        pass

    async def close(self):
        pass


class MemoryPool:
    executor = "test"
    lost = (Lost,)

    def __init__(self, store):
        self.workers = [
            LocalWorker(EngineHost(lambda: Engine(store, lambda p, overrides: FIXED))) for _ in "ab"
        ]
        for index, worker in enumerate(self.workers):
            worker.name, worker.node = f"n1/{index}", "n1"
        self.workers.insert(1, DyingWorker())
        self.node_cpus = {"n1": 2.0, "n2": 1.0}

    async def snapshots(self, asks, adjust=None):
        return await ask_each(asks)

    async def close(self):
        pass


def test_a_lost_workers_share_is_redone_by_the_others_and_counted_once():
    store = MemoryStore()
    executor = PhaseExecutor(MemoryPool(store), tick_s=0.02)
    outcome = asyncio.run(executor.run_phase(spec(Phase.PUT), keys(30)))
    result = outcome.result
    assert sorted(store.objects) == list(keys(30)) == sorted(outcome.written)
    assert result.objects == 30 and not result.failed
    assert {a.actor for a in result.actors} == {"n1/0", "n1/1"}
    assert sum(a.summary.objects for a in result.actors) == 30
    rows = executor.telemetry.series
    assert sum(row.ops for row in rows) == 30 and {row.node for row in rows} == {"n1"}


def test_an_interrupted_executor_stops_its_shares():
    store = MemoryStore(delay_s=0.01)
    store.objects = {k: ObjectData(7).content(k, 1000) for k in keys(4)}
    executor = PhaseExecutor(MemoryPool(store), tick_s=0.05)

    async def main():
        running = asyncio.ensure_future(executor.run_phase(spec(Phase.GET, duration_s=30), keys(4)))
        await asyncio.sleep(0.3)
        executor.interrupt()
        return await running

    result = asyncio.run(main()).result
    assert executor.interrupted and result.ended_by == EndedBy.INTERRUPTED
    assert result.elapsed_s < 3 and result.objects > 0 and not result.failed


class LostWhenStopped(DyingWorker):
    """A worker whose process dies when the run is stopped (a signal to the whole process group
    reaches Ray's processes too): it answers snapshots of its work until then."""

    def __init__(self) -> None:
        self.stopped = asyncio.Event()

    async def run_share(self, task_id, spec, keys, control):
        self.task_id = task_id
        await self.stopped.wait()
        raise Lost

    async def snapshot(self, steer=None, adjust=None):
        return self.task_id, EngineSnapshot(Phase.GET, recorded(7, 7000), 8, 2)

    def stop(self, task_id, reason):
        self.stopped.set()


def test_a_worker_lost_while_the_run_stops_counts_its_last_snapshot_and_marks_it_partial(caplog):
    store = MemoryStore(delay_s=0.01)
    store.objects = {k: ObjectData(7).content(k, 1000) for k in keys(6)}
    pool = MemoryPool(store)
    pool.workers[1] = LostWhenStopped()
    executor = PhaseExecutor(pool, tick_s=0.05)

    async def main():
        running = asyncio.ensure_future(executor.run_phase(spec(Phase.GET, duration_s=30), keys(6)))
        await asyncio.sleep(0.4)
        executor.interrupt()
        return await running

    result = asyncio.run(main()).result
    assert result.partial and result.ended_by == EndedBy.INTERRUPTED and not result.failed
    lost = next(a for a in result.actors if a.actor == "n2/0")
    assert lost.summary.objects == 7 and lost.summary.bytes == 7000
    assert result.objects == sum(a.summary.objects for a in result.actors) > 7
    # Nothing of the lost share went to another worker: the run is stopping.
    assert not [r for r in caplog.records if "died during" in r.getMessage()]


class FailingWorker(DyingWorker):
    """A share that ends on an error every request would hit, after a little work."""

    name, node = "n2/0", "n2"

    async def run_share(self, task_id, spec, keys, control):
        await asyncio.sleep(0.2)
        return ShareResult(
            spec.phase,
            0.2,
            recorded(2, 2000),
            EndedBy.ERROR,
            3,
            {keys[2]: "denied"},
            fatal="PutObject s3://bucket/k: AccessDenied (403)",
        )


def test_a_fatal_share_stops_every_other_share_and_its_work_is_kept():
    store = MemoryStore(delay_s=0.01)
    pool = MemoryPool(store)
    pool.workers[1] = FailingWorker()
    executor = PhaseExecutor(pool, tick_s=0.05)
    outcome = asyncio.run(executor.run_phase(spec(Phase.PUT, duration_s=30), keys(30)))
    assert outcome.fatal.startswith("PutObject s3://bucket/k: AccessDenied")
    result = outcome.result
    assert result.ended_by == EndedBy.ERROR and result.elapsed_s < 3
    assert {a.actor for a in result.actors} == {"n1/0", "n1/1", "n2/0"}
    assert result.objects == len(store.objects) + 2


class SlowToAnswer(FailingWorker):
    """A share whose snapshots take `delay_s` to come back (a driver with many actors)."""

    def __init__(self, delay_s: float = 0.03) -> None:
        super().__init__()
        self.delay_s = delay_s

    async def run_share(self, task_id, spec, keys, control):
        await asyncio.sleep(1.0)
        return ShareResult(spec.phase, 1.0, recorded(1, 100))

    async def snapshot(self, steer=None, adjust=None):
        await asyncio.sleep(self.delay_s)
        return -1, None


def test_gathering_keeps_its_cadence_and_says_nothing_while_it_keeps_up(caplog):
    pool = MemoryPool(MemoryStore())
    pool.workers[1] = SlowToAnswer()
    executor = PhaseExecutor(pool, tick_s=0.05)
    asyncio.run(executor.run_phase(spec(Phase.PUT), keys(4)))
    # Gathers start every 0.05 s however long each takes: about 20 in the share's second, not
    # the 12 a sleep of a tick after each gather would fit.
    assert 16 <= executor.gathers <= 21
    assert all(0.03 <= took < 0.05 for took in executor.gather_wall_s)
    assert not [r for r in caplog.records if "statistics took" in r.getMessage()]


def test_gathering_that_misses_ticks_says_so_once(caplog):
    pool = MemoryPool(MemoryStore())
    pool.workers[1] = SlowToAnswer(delay_s=0.08)
    executor = PhaseExecutor(pool, tick_s=0.05)
    asyncio.run(executor.run_phase(spec(Phase.PUT), keys(4)))
    slow = [r for r in caplog.records if "statistics took" in r.getMessage()]
    assert len(slow) == 1 and "longer than the 50 ms tick" in slow[0].getMessage()


def replay_lanes(*requests: tuple[float, str, str]) -> list:
    rows = [
        Logged(1_790_000_000_000_000_000 + int(at * 1e9), op, "b", key, 1000, 1, False)
        for at, op, key in requests
    ]
    return plan(rows, OwnNames("")).lanes


def test_a_replay_sends_each_request_when_due_and_a_key_waits_for_its_last():
    store = MemoryStore()
    engine = Engine(store, lambda phase, overrides: FIXED)
    lanes = replay_lanes(
        (0.0, "PUT", "a"), (0.0, "GET", "a"), (0.3, "HEAD", "a"), (0.3, "PUT", "b")
    )
    start = time.time() + 0.2
    began = time.perf_counter()
    share = asyncio.run(
        engine.run_share(spec(Phase.REPLAY, replay=ReplaySpec(start)), lanes, task_id=0)
    )
    took = time.perf_counter() - began
    loop = share.open_loop
    assert share.stats.errors == 0 and share.verified == 1
    assert loop is not None and loop.sent == 4 and loop.sent_per_s == [4]
    assert took >= 0.5 and share.elapsed_s < took - 0.15
    assert {op: s.ops for op, s in share.by_op.items()} == {"PUT": 2, "GET": 1, "HEAD": 1}


def test_a_replay_stopped_before_its_start_sends_nothing():
    engine = Engine(MemoryStore(), lambda phase, overrides: FIXED)
    lanes = replay_lanes((0.0, "PUT", "a"))

    async def main():
        share = asyncio.ensure_future(
            engine.run_share(spec(Phase.REPLAY, replay=ReplaySpec(time.time() + 30)), lanes)
        )
        await asyncio.sleep(0.3)
        engine.stop(EndedBy.INTERRUPTED)
        return await asyncio.wait_for(share, 5)

    share = asyncio.run(main())
    assert share.dispatched == 0 and share.ended_by == EndedBy.INTERRUPTED
