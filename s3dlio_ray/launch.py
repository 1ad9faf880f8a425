"""One run, set up and torn down: executor (Ray actors or one local engine), metrics, progress."""

from __future__ import annotations

import contextlib
import dataclasses
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from s3dlio_ray import __version__
from s3dlio_ray.cluster.driver import RayExecutor
from s3dlio_ray.config import Settings
from s3dlio_ray.engine import ConcurrencySample, Engine
from s3dlio_ray.metrics import MetricsExporter, MetricsView
from s3dlio_ray.runner import LocalExecutor, RunResult, build_engine, new_run_id, run_workload
from s3dlio_ray.s3.signing import StaticCredentials
from s3dlio_ray.stats import OpStats


@dataclass
class Progress:
    """What the live progress line shows."""

    phase: str
    done: int
    errors: int
    gbps: float
    limit: int
    in_flight: int
    node_gbps: dict[str, float] = field(default_factory=dict)


ProgressHook = Callable[[Progress], None]


def run_info(settings: Settings, endpoint: str) -> dict[str, str]:
    """Labels of the run-info metric: what ran and how; never credentials."""
    return {
        "run_id": settings.run_id or "",
        "workload": settings.name,
        "endpoint": endpoint,
        "objects": str(settings.objects),
        "object_size": settings.object_size.describe(),
        "concurrency": settings.concurrency_mode
        if settings.concurrency is None
        else str(settings.concurrency),
        "http": "HTTP/2" if settings.http2 else "HTTP/1.1",
        "executor": settings.executor,
        "version": __version__,
    }


def _ray_progress(phase: str, executor: RayExecutor) -> Progress:
    phase_totals = {node: s for (node, op), s in executor.totals.totals.items() if op == phase}
    node_gbps = {node: executor.rates.get((node, phase), 0.0) / 1e9 for node in executor.nodes}
    concurrency = executor.totals.concurrency()
    return Progress(
        phase,
        sum(s.ops for s in phase_totals.values()),
        sum(s.errors for s in phase_totals.values()),
        sum(node_gbps.values()),
        sum(limit for limit, _ in concurrency.values()),
        sum(in_flight for _, in_flight in concurrency.values()),
        node_gbps,
    )


def _local_progress(phase: str, stats: OpStats, sample: ConcurrencySample) -> Progress:
    return Progress(
        phase, stats.ops, stats.errors, sample.bytes_per_s / 1e9, sample.limit, sample.in_flight
    )


async def execute_configurations(
    settings: Settings,
    endpoint: str,
    credentials: StaticCredentials | None = None,
    on_progress: ProgressHook | None = None,
    on_metrics: Callable[[int], None] | None = None,
) -> list[tuple[str | None, RunResult]]:
    """Each configuration in turn on the same keys, sizes and content; cleanup after the last.

    A workload without configurations is one run under its own name (None).
    """
    if not settings.configurations:
        return [(None, await execute(settings, endpoint, credentials, on_progress, on_metrics))]
    run_id = settings.run_id or new_run_id()
    seed = settings.seed if settings.seed is not None else secrets.randbits(32)
    shared = dataclasses.replace(settings, run_id=run_id, seed=seed, configurations=())
    transfer_phases = tuple(p for p in settings.phases if p != "cleanup")
    results: list[tuple[str | None, RunResult]] = []
    created = False
    for index, configuration in enumerate(settings.configurations):
        last = index == len(settings.configurations) - 1
        one = dataclasses.replace(
            shared,
            phases=settings.phases if last else transfer_phases,
            **dict(configuration.overrides),
        )
        result = await execute(one, endpoint, credentials, on_progress, on_metrics, created)
        created = created or result.bucket_created
        results.append((configuration.name, result))
        if result.error:
            break
    return results


async def execute(
    settings: Settings,
    endpoint: str,
    credentials: StaticCredentials | None = None,
    on_progress: ProgressHook | None = None,
    on_metrics: Callable[[int], None] | None = None,
    bucket_created_earlier: bool = False,
) -> RunResult:
    """Run the workload on the configured executor, serving metrics while it runs.

    `on_metrics` is told the port /metrics is served on, once it is.
    """
    if settings.executor == "local":
        engine = build_engine(settings, endpoint, credentials)
        if on_progress is not None and isinstance(engine, Engine):
            engine.on_progress = lambda *a: on_progress(_local_progress(*a))
        try:
            return await run_workload(
                settings,
                endpoint,
                LocalExecutor(engine, settings),
                credentials,
                bucket_created_earlier,
            )
        finally:
            await engine.aclose()

    executor = RayExecutor(settings, endpoint, credentials)
    exporter = None
    try:
        executor.start()
        if on_progress is not None:
            executor.on_tick = lambda phase, ex: on_progress(_ray_progress(phase, ex))
        if settings.metrics_port is not None:
            view = MetricsView(
                executor.totals.totals,
                executor.rates,
                executor.totals.concurrency,
                executor.actors_per_node(),
            )
            exporter = MetricsExporter(
                view,
                run_info(settings, endpoint),
                settings.metrics_host,
                settings.metrics_port,
                settings.metrics_linger,
                settings.pushgateway_url,
            ).start()
            if on_metrics is not None:
                on_metrics(exporter.port)
        result = await run_workload(
            settings, endpoint, executor, credentials, bucket_created_earlier
        )
        result.nodes = executor.nodes
        result.actors = executor.actor_count
        result.gather_cpu_s = executor.gather_cpu_s
        result.gathers = executor.gathers
        result.series = executor.series
        result.node_cpus = executor.node_cpus
        await executor.close()
        if exporter is not None:
            exporter.finish()
    finally:
        with contextlib.suppress(Exception):
            await executor.close()
        if exporter is not None:
            exporter.stop()
    return result
