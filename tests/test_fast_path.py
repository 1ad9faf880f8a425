"""The small-request path (issue 27) against a real S3 server (moto), beside the general path:
the same phases do the same things both ways, faults included, and the fast one runs no task
per request. Every test runs through both paths (the `path` fixture)."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest
from conftest import make_client, stored_objects
from faults import FaultProxy, Rule
from test_oplog import read_oplog

from s3dlio_ray._internal.execution.admission import ShareLimits
from s3dlio_ray._internal.execution.engine import Engine
from s3dlio_ray._internal.execution.phases.transfer import PhaseSpec
from s3dlio_ray._internal.lab import null_endpoint
from s3dlio_ray._internal.model.keys import KeyRange, listings
from s3dlio_ray._internal.model.sizes import ObjectSizes
from s3dlio_ray._internal.model.vocabulary import EndedBy, Phase
from s3dlio_ray._internal.storage.oplog import OpLog
from s3dlio_ray._internal.storage.s3.retry import RetryPolicy
from s3dlio_ray._internal.storage.store import S3Store
from s3dlio_ray._internal.tuning.pacing import RateLimit
from s3dlio_ray._internal.tuning.parts import DEFAULT_FAST_PATH_MAX
from s3dlio_ray._internal.tuning.scheduler import ConcurrencyPolicy, Mode

FIXED = ConcurrencyPolicy(Mode.FIXED, 8)
SMALL = ObjectSizes.fixed(4096)


@pytest.fixture(params=["fast", "general"])
def path(request) -> str:
    return request.param


def engine_on(url: str, path: str, op_log: OpLog | None = None, **client) -> Engine:
    client.setdefault("retry", RetryPolicy(max_attempts=3, base_delay_s=0.01))
    fast_max = DEFAULT_FAST_PATH_MAX if path == "fast" else None
    store = S3Store(make_client(url, **client), 10 * 2**20, op_log, fast_path_max=fast_max)
    return Engine(store, lambda phase, overrides: FIXED)


def spec(phase: Phase, bucket: str, sizes: ObjectSizes = SMALL, **options) -> PhaseSpec:
    return PhaseSpec(phase, bucket, sizes, 11, **options)


class TaskCount:
    """Counts the tasks the running loop creates (its task factory)."""

    def __init__(self) -> None:
        self.created = 0

    def __enter__(self) -> TaskCount:
        loop = asyncio.get_running_loop()

        def factory(loop, coro, **kwargs):
            self.created += 1
            return asyncio.Task(coro, loop=loop, **kwargs)

        loop.set_task_factory(factory)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.get_running_loop().set_task_factory(None)


def test_every_phase_does_the_same_both_ways(moto_url, boto3_s3, bucket, path, tmp_path):
    keys = KeyRange.of("", "f", 120)
    op_log = OpLog(tmp_path / "ops")
    engine = engine_on(moto_url, path, op_log)
    mixed_sizes = ObjectSizes("uniform", 1024, 2 * 2**20)
    big = KeyRange.of("", "big", 6)

    async def main():
        results = {}
        results["put"] = await engine.run_share(spec(Phase.PUT, bucket), keys)
        results["get"] = await engine.run_share(spec(Phase.GET, bucket), keys)
        results["stat"] = await engine.run_share(spec(Phase.STAT, bucket), keys)
        page = spec(Phase.LIST, bucket, page_size=7)
        results["list"] = await engine.run_share(page, listings(keys, 1000))
        results["big_put"] = await engine.run_share(spec(Phase.PUT, bucket, mixed_sizes), big)
        results["big_get"] = await engine.run_share(spec(Phase.GET, bucket, mixed_sizes), big)
        batches = spec(Phase.DELETE, bucket, delete_batch=25)
        results["delete"] = await engine.run_share(batches, list(keys) + list(big))
        await engine.aclose()
        return results

    results = asyncio.run(main())
    put, get, stat, listed, delete = (results[k] for k in ("put", "get", "stat", "list", "delete"))
    assert (put.stats.ops, put.stats.bytes, put.stats.errors) == (120, 120 * 4096, 0)
    assert (get.stats.ops, get.verified, get.verify_failures) == (120, 120, 0)
    assert (stat.stats.ops, stat.stats.errors) == (120, 0)
    assert listed.stats.ops == 120 and listed.by_op["page"].ops >= 120 // 7
    assert (results["big_get"].verified, results["big_get"].verify_failures) == (6, 0)
    assert (delete.stats.ops, delete.stats.errors) == (126, 0)
    assert stored_objects(boto3_s3, bucket, "") == {}
    for result in (put, get, stat, delete):
        assert result.by_endpoint == {moto_url: result.stats}
        assert result.stats.latency.count == result.dispatched
    assert get.stats.ttfb.count == 120 and get.stats.ttfb.max_s <= get.stats.latency.max_s
    rows = read_oplog(op_log.path)
    ops = [row["op"] for row in rows]
    assert ops.count("PUT") == 120 + 6 and ops.count("GET") == 120 + 6
    assert ops.count("HEAD") == 120 and ops.count("DELETE") == 6
    assert ops.count("LIST") == listed.by_op["page"].ops
    assert all(row["error"] == "" for row in rows)


def test_faults_are_retried_counted_and_a_fatal_one_stops_the_phase(moto_url, bucket, path):
    keys = KeyRange.of("", "g", 40)
    rules = [
        Rule("503", lambda r: r.method == "GET" and r.of_an_object, nth=3),
        Rule("reset", lambda r: r.method == "GET" and r.of_an_object, nth=6),
        Rule("truncate", lambda r: r.method == "GET" and r.of_an_object, nth=12),
        Rule("flip", lambda r: r.method == "GET" and r.target.endswith("obj-00000009")),
        Rule("stall", lambda r: r.method == "HEAD" and r.target.endswith("obj-00000004")),
        Rule("403", lambda r: r.method == "PUT" and r.target.endswith("obj-00000020")),
    ]
    with FaultProxy(moto_url, rules) as proxy:
        engine = engine_on(proxy.url, path, timeout_s=0.5)

        async def main():
            results = [await engine.run_share(spec(Phase.PUT, bucket), keys[:20])]
            for phase in (Phase.GET, Phase.STAT):
                results.append(await engine.run_share(spec(phase, bucket), keys[:20]))
            results.append(await engine.run_share(spec(Phase.PUT, bucket), keys))
            await engine.aclose()
            return results

        put, get, stat, denied = asyncio.run(main())
    assert (put.stats.ops, put.stats.errors) == (20, 0)
    # The flipped object is a verification failure: an error of its operation.
    assert (get.stats.ops, get.stats.errors, get.stats.retries) == (19, 1, 3)
    assert get.throttles == 1
    assert (get.verified, get.verify_failures) == (19, 1)
    assert (stat.stats.ops, stat.stats.errors, stat.stats.retries) == (20, 0, 1)
    assert denied.ended_by is EndedBy.ERROR and "AccessDenied" in (denied.fatal or "")
    assert denied.stats.errors >= 1 and denied.dispatched < 40


def test_an_endpoint_that_dies_stops_the_phase_with_one_clear_error(moto_url, bucket, path):
    keys = KeyRange.of("", "k", 40)
    rule = Rule("kill", lambda r: r.method == "PUT" and r.of_an_object, nth=10)
    with FaultProxy(moto_url, [rule]) as proxy:
        engine = engine_on(proxy.url, path, timeout_s=2)

        async def main():
            result = await engine.run_share(spec(Phase.PUT, bucket), keys)
            await engine.aclose()
            return result

        result = asyncio.run(main())
    assert result.ended_by is EndedBy.ERROR and "cannot connect" in (result.fatal or "")
    assert result.stats.ops < 40 and result.stats.errors >= 1 and result.dispatched < 40


def test_failed_checks_give_each_read_buffer_back_once(moto_url, bucket, path):
    """Every third GET answered with a flipped byte, then a clean pass: the failures are the
    flipped ones, and no buffer went back to the pool twice (two reads would share it)."""
    keys = KeyRange.of("", "v", 60)
    rule = Rule("flip", lambda r: r.method == "GET" and r.of_an_object, nth=1, times=0)
    with FaultProxy(moto_url) as proxy:
        engine = engine_on(proxy.url, path)

        async def main():
            put = await engine.run_share(spec(Phase.PUT, bucket), keys)
            assert put.stats.errors == 0, put.failed
            proxy.rules.append(rule)
            flipped = await engine.run_share(spec(Phase.GET, bucket), keys)
            proxy.rules.remove(rule)
            clean = await engine.run_share(spec(Phase.GET, bucket), keys)
            await engine.aclose()
            return flipped, clean

        flipped, clean = asyncio.run(main())
    assert (flipped.verified, flipped.verify_failures) == (0, 60), flipped.failed
    assert (clean.verified, clean.verify_failures) == (60, 0)
    pooled = [buffer for free in engine.store._buffers._free.values() for buffer in free]
    assert len({id(buffer) for buffer in pooled}) == len(pooled)


def test_the_in_flight_limit_a_rate_cap_and_a_stop_hold(moto_url, bucket, path):
    keys = KeyRange.of("", "h", 200)
    engine = engine_on(moto_url, path)
    limits = ShareLimits(rate=RateLimit("ops", 400))

    async def main():
        await engine.run_share(spec(Phase.PUT, bucket), keys)
        loop = asyncio.get_running_loop()
        started = loop.time()
        paced = await engine.run_share(spec(Phase.GET, bucket), keys, limits)
        took = loop.time() - started
        timed = asyncio.ensure_future(
            engine.run_share(spec(Phase.GET, bucket), keys, ShareLimits(duration_s=30))
        )
        await asyncio.sleep(0.5)
        engine.stop(EndedBy.AUTOTERM)
        stopped = await timed
        await engine.aclose()
        return paced, took, stopped

    paced, took, stopped = asyncio.run(main())
    assert paced.stats.ops == 200 and took >= 200 / 400 - 0.1
    assert paced.peak_in_flight <= FIXED.initial
    assert stopped.ended_by is EndedBy.AUTOTERM and stopped.stats.ops > 0
    assert stopped.elapsed_s < 10


@pytest.mark.integration
def test_the_fast_path_runs_a_task_per_connection_not_per_request(path):
    """Against a keep-alive endpoint (the null endpoint; moto closes each connection after one
    answer): 400 PUTs and GETs of 4 KiB."""
    port, server = null_endpoint.launch("4KiB")
    try:
        deadline = time.monotonic() + 30
        while socket.socket().connect_ex(("127.0.0.1", port)) != 0:
            assert server.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        engine = engine_on(f"http://127.0.0.1:{port}", path)
        keys = KeyRange.of("", "n", 400)

        async def main():
            with TaskCount() as tasks:
                put = await engine.run_share(spec(Phase.PUT, "b", verify=False), keys)
                get = await engine.run_share(spec(Phase.GET, "b", verify=False), keys)
            await engine.aclose()
            return put, get, tasks.created

        put, get, created = asyncio.run(main())
    finally:
        server.terminate()
        server.wait()
    assert (put.stats.ops, get.stats.ops, put.stats.errors, get.stats.errors) == (400, 400, 0, 0)
    if path == "fast":
        assert created < 40, f"{created} tasks for 800 requests"
    else:
        assert created >= 800


def test_a_mixed_phase_counts_each_operation_and_verifies_every_read(moto_url, bucket, path):
    keys = KeyRange.of("", "m", 40)
    engine = engine_on(moto_url, path)
    mix = (("get", 50.0), ("put", 20.0), ("stat", 20.0), ("delete", 10.0))

    async def main():
        await engine.run_share(spec(Phase.PUT, bucket), keys)
        mixed = spec(Phase.MIXED, bucket, mix=mix)
        result = await engine.run_share(mixed, keys, ShareLimits(duration_s=1.5))
        await engine.aclose()
        return result

    result = asyncio.run(main())
    assert result.stats.errors == 0 and result.verify_failures == 0
    assert set(result.by_op) == {"get", "put", "stat", "delete"}
    assert all(stats.ops > 0 for stats in result.by_op.values())
    assert sum(stats.ops for stats in result.by_op.values()) == result.stats.ops
    assert result.verified == result.by_op["get"].ops
