"""Adaptive concurrency on a real endpoint: moto behind a proxy that adds 150 ms to responses."""

from __future__ import annotations

import asyncio

from conftest import make_engine
from proxy import TcpProxy

from s3dlio_ray._internal.execution.phases.transfer import PhaseSpec
from s3dlio_ray._internal.model.sizes import ObjectSizes
from s3dlio_ray._internal.model.vocabulary import Phase
from s3dlio_ray._internal.tuning.scheduler import ConcurrencyPolicy, Mode

OBJECTS = 480
SIZE = ObjectSizes.fixed(32 * 1024)
LATENCY_S = 0.15


def test_concurrency_rises_behind_latency_and_beats_a_fixed_low_limit(moto_url, bucket):
    keys = [f"lat/{i:04d}" for i in range(OBJECTS)]
    host, port = moto_url.removeprefix("http://").split(":")
    fixed = ConcurrencyPolicy(Mode.FIXED, 8)
    adaptive = ConcurrencyPolicy(Mode.AUTO, 8, settle_intervals=1, measure_intervals=1, min_ops=4)

    async def main():
        direct = make_engine(moto_url, fixed)
        await direct.run_share(PhaseSpec(Phase.PUT, bucket, SIZE, 21), keys)
        await direct.aclose()
        proxy = await TcpProxy(host, int(port), response_delay_s=LATENCY_S).start()
        results = {}
        for name, policy in (("fixed", fixed), ("adaptive", adaptive)):
            engine = make_engine(proxy.url, policy, adapt_interval_s=0.1)
            results[name] = await engine.run_share(PhaseSpec(Phase.GET, bucket, SIZE, 21), keys)
            await engine.aclose()
        await proxy.close()
        return results

    results = asyncio.run(main())
    fixed_run, adaptive_run = results["fixed"], results["adaptive"]
    for run in (fixed_run, adaptive_run):
        assert run.verified == OBJECTS and not run.failed
        assert run.stats.latency.percentile(0.5) >= LATENCY_S
    assert fixed_run.final_concurrency == 8
    limits = [sample.limit for sample in adaptive_run.samples]
    assert adaptive_run.start_concurrency == 8
    # Relative to what this run recorded, not to this machine's speed: behind 150 ms of latency
    # more requests in flight pay off, so the controller at least doubles its limit, really keeps
    # that many in flight, and finishes before the fixed limit of 8 does.
    assert max(limits) >= 2 * adaptive_run.start_concurrency, [
        (round(s.t_s, 2), s.limit, s.in_flight, round(s.bytes_per_s / 1e6, 1))
        for s in adaptive_run.samples
    ]
    assert adaptive_run.peak_in_flight > fixed_run.peak_in_flight
    assert adaptive_run.elapsed_s < fixed_run.elapsed_s, (
        adaptive_run.elapsed_s,
        fixed_run.elapsed_s,
        limits,
    )
