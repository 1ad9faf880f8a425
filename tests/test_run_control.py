"""Run control and object sizes through Ray against a real moto server: what a user would check."""

from __future__ import annotations

import asyncio
import time

import pytest
from conftest import TEST_CREDENTIALS, ended_on_time, settings_for, stored_objects
from proxy import TcpProxy

from s3dlio_ray._internal.execution.build import build_engine
from s3dlio_ray._internal.execution.phases.transfer import PhaseSpec
from s3dlio_ray._internal.model.keys import KeyRange, run_prefix
from s3dlio_ray._internal.model.sizes import ObjectSizes
from s3dlio_ray._internal.model.vocabulary import EndedBy, Phase
from s3dlio_ray._internal.run.launch import execute
from s3dlio_ray._internal.run.plan import plan_run


def run(settings, url):
    return asyncio.run(execute(plan_run(settings, (url,), TEST_CREDENTIALS)))


def behind_latency(moto_url: str, settings, delay_s: float):
    """Run through a proxy that adds `delay_s` to every response: a slow but steady endpoint."""
    host, port = moto_url.removeprefix("http://").split(":")

    async def main():
        proxy = await TcpProxy(host, int(port), response_delay_s=delay_s).start()
        try:
            return await execute(plan_run(settings, (proxy.url,), TEST_CREDENTIALS))
        finally:
            await proxy.close()

    return asyncio.run(main())


def test_a_size_distribution_is_written_exactly_and_read_back_verified(
    ray_cluster, moto_url, boto3_s3, bucket
):
    settings = settings_for(bucket, objects=60, object_size="log-uniform:1..256KiB")
    result = run(settings, moto_url)
    assert result.ok, result.error
    put, get = result.phases
    keys = list(KeyRange.of(settings.prefix, settings.run_id, 60))
    expected = {key: settings.object_size.of(key) for key in keys}
    stored = stored_objects(boto3_s3, bucket, run_prefix(settings.prefix, settings.run_id))
    # Every object has its own exact size (small ones too, no rounding), on the server and in
    # the result, and every one was read back and verified.
    assert stored == expected
    assert min(expected.values()) < 4096 < max(expected.values())
    assert len(set(expected.values())) >= 35
    assert put.stats.bytes == get.stats.bytes == sum(expected.values())
    assert get.verified == 60 and get.verify_failures == 0


def test_duration_ends_put_and_get_within_a_second_and_reads_what_was_written(
    ray_cluster, moto_url, boto3_s3, bucket
):
    settings = settings_for(
        bucket, objects=12, object_size="16KiB", duration_s=3, phases="put,get,cleanup"
    )
    result = run(settings, moto_url)
    assert result.ok, result.error
    put, get = result.phases
    for phase in (put, get):
        assert phase.ended_by == "duration"
        assert ended_on_time(phase.elapsed_s, 3, phase.latency.max_s), phase
    # The timed PUT went on past its 12 keys with new ones; the GET read every key written
    # (again and again), verifying each read; cleanup removed them all.
    assert put.stats.ops > 12 and not put.failed
    assert get.stats.ops > put.stats.ops / 4 and get.verify_failures == 0
    assert get.verified == get.stats.ops
    assert result.cleanup.deleted == put.stats.ops
    assert stored_objects(boto3_s3, bucket, run_prefix(settings.prefix, settings.run_id)) == {}


def test_autoterm_ends_a_phase_early_on_a_steady_endpoint(ray_cluster, moto_url, bucket):
    settings = settings_for(
        bucket,
        objects=1500,
        object_size="4KiB",
        concurrency=2,
        phases="put",
        autoterm=True,
        autoterm_window_s=3,
        autoterm_pct=15,
    )
    # 3 actors x 2 in flight x 50 ms: about 100 PUTs a second, steadily, so 1500 would take
    # some 15 s; autoterm needs a full window (3 s) of steady samples after the first.
    result = behind_latency(moto_url, settings, 0.05)
    put = result.phases[0]
    assert put.ended_by == "autoterm", (put.elapsed_s, put.stats.ops)
    assert 3 <= put.elapsed_s < 8
    assert 0 < put.stats.ops < 1000 and not put.failed


def test_a_rate_limit_caps_the_whole_cluster(ray_cluster, moto_url, bucket):
    settings = settings_for(
        bucket,
        objects=120,
        object_size="4KiB",
        phases=["put", {"put": {"rate_limit": "40 ops/s"}}],
    )
    result = run(settings, moto_url)
    assert result.ok, result.error
    uncapped, capped = result.phases
    assert uncapped.stats.ops == capped.stats.ops == 120
    # 120 operations at 40 a second over three actors: never faster than the cap; and not far
    # below it unless the store itself is slower (the uncapped PUT of the same keys says how
    # fast it is on this machine right now).
    assert capped.ops_per_s <= 40 * 1.1, capped.ops_per_s
    floor = min(40 * 0.75, uncapped.ops_per_s / 2)
    assert capped.ops_per_s >= floor, (capped.ops_per_s, uncapped.ops_per_s)


def test_a_byte_rate_limit_caps_throughput(ray_cluster, moto_url, bucket):
    settings = settings_for(
        bucket,
        objects=40,
        object_size="256KiB",
        phases=[{"put": {"rate_limit": "4 MiB/s"}}, "get"],
    )
    result = run(settings, moto_url)
    assert result.ok, result.error
    put, get = result.phases
    limit = 4 * 2**20
    assert put.stats.bytes / put.elapsed_s <= limit * 1.1
    uncapped = get.stats.bytes / get.elapsed_s
    assert put.stats.bytes / put.elapsed_s >= min(limit * 0.7, uncapped / 2)


def test_the_boto3_baseline_honours_duration_and_rate_limit(ray_cluster, moto_url, bucket):
    settings = settings_for(
        bucket,
        client="boto3",
        concurrency=4,
        objects=10,
        object_size="8KiB",
        duration_s=2,
        rate_limit="30 ops/s",
    )
    result = run(settings, moto_url)
    assert result.ok, result.error
    put, get = result.phases
    for phase in (put, get):
        assert phase.ended_by == "duration"
        assert ended_on_time(phase.elapsed_s, 2, phase.latency.max_s), phase
        assert phase.ops_per_s <= 30 * 1.1, phase.ops_per_s
    assert put.stats.ops > 10  # went on past its keys, however busy the machine
    assert get.verified == get.stats.ops and get.verify_failures == 0


@pytest.mark.parametrize("client", ["engine", "boto3"])
def test_a_fatal_error_ends_the_phase_for_either_client(moto_url, client):
    """Every PUT into a bucket that does not exist would fail: the share stops at the first
    answer and says why, whether this project's client or boto3 sent the request."""
    settings = settings_for("no-such-bucket-here", client=client, concurrency=2)
    engine = build_engine(settings, plan_run(settings, (moto_url,), TEST_CREDENTIALS).access)
    spec = PhaseSpec(Phase.PUT, "no-such-bucket-here", ObjectSizes.fixed(1024), 1)

    async def main():
        try:
            return await engine.run_share(spec, [f"k{i}" for i in range(500)])
        finally:
            await engine.aclose()

    started = time.perf_counter()
    put = asyncio.run(main())
    assert put.ended_by == EndedBy.ERROR and put.dispatched < 50
    assert "NoSuchBucket" in put.fatal and "no-such-bucket-here" in put.fatal
    assert "\n" not in put.fatal and time.perf_counter() - started < 5
