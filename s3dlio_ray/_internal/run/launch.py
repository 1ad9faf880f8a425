"""One run set up and torn down: the worker pool (Ray actors, or one local engine), the phase
executor, the driver's listener (metrics, control) and the progress hook, for each configuration
of the run's plan in turn.

Ray is imported here only when the Ray executor is asked for, so `executor: local`, `report` and
`compare` never load it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from s3dlio_ray._internal.execution.build import build_engine, cluster_policy
from s3dlio_ray._internal.live.control_channel import Changer, control_app, new_token, register
from s3dlio_ray._internal.live.executor import PhaseExecutor, ProgressHook
from s3dlio_ray._internal.live.listener import Listener, check_host
from s3dlio_ray._internal.live.local_pool import LocalPool
from s3dlio_ray._internal.live.metrics import MetricsExporter, MetricsView
from s3dlio_ray._internal.live.pool import WorkerPool
from s3dlio_ray._internal.model.errors import ConfigError
from s3dlio_ray._internal.model.results import RunResult
from s3dlio_ray._internal.model.version import VERSION
from s3dlio_ray._internal.run.plan import ConfigurationPlan, RunPlan
from s3dlio_ray._internal.run.runner import run_workload
from s3dlio_ray._internal.settings.schema import Settings
from s3dlio_ray._internal.settings.values import Executor

MetricsHook = Callable[[int], None]


def run_info(plan: RunPlan, settings: Settings) -> dict[str, str]:
    """Labels of the run-info metric: what ran and how; never credentials."""
    return {
        "run_id": plan.run_id,
        "workload": settings.name,
        "endpoint": ",".join(endpoint.label for endpoint in plan.access.endpoints),
        "objects": str(settings.objects),
        "object_size": settings.object_size.describe(),
        "concurrency": settings.concurrency_mode
        if settings.concurrency is None
        else str(settings.concurrency),
        "http": "HTTP/2" if settings.http2 else "HTTP/1.1",
        "executor": str(settings.executor),
        "version": VERSION,
    }


def targets(settings: Settings) -> dict[str, float]:
    """The throughput targets, GB/s, by scope (each actor's, the cluster's); 0: none set."""
    return {"actor": settings.target_gbps or 0.0, "cluster": settings.cluster_target_gbps or 0.0}


class Stoppable(Protocol):
    """Something another thread can ask to stop or change the run (the API's RunControl)."""

    def attach(self, listener: Callable[[bool], None]) -> None:
        """`listener(skip_cleanup)` is called when the run is to stop."""
        ...

    def attach_changes(self, changer: Changer | None) -> None:
        """Changes go to `changer` from now on (None: the run takes none now)."""
        ...


async def execute_plan(
    plan: RunPlan,
    on_progress: ProgressHook | None = None,
    on_metrics: MetricsHook | None = None,
    control: Stoppable | None = None,
    on_control: Callable[[str], None] | None = None,
) -> list[RunResult]:
    """Each configuration of the plan in turn on the same keys, sizes and content; after an
    interruption or an error no further configuration starts."""
    check_host(plan.settings.metrics_host)
    results: list[RunResult] = []
    created = False
    for configuration in plan.configurations:
        result = await execute(
            plan, configuration, on_progress, on_metrics, control, on_control, created
        )
        created = created or result.bucket_created
        results.append(result)
        if result.error:
            break
    return results


def _pool(plan: RunPlan, settings: Settings) -> WorkerPool:
    if settings.executor == Executor.LOCAL:
        cpus = float(len(os.sched_getaffinity(0)))
        return LocalPool(lambda: build_engine(settings, plan.access), cpus)
    from s3dlio_ray._internal.cluster.driver import RayPool

    pool = RayPool(settings, plan.access).start()
    if plan.access.embedded and pool.elsewhere:
        raise ConfigError(
            f"the embedded S3 endpoint listens on this machine's loopback, which the cluster's "
            f"nodes on other machines ({', '.join(pool.elsewhere)}) cannot reach: give an "
            "endpoint every node reaches (--endpoint URL)"
        )
    return pool


async def execute(
    plan: RunPlan,
    configuration: ConfigurationPlan | None = None,
    on_progress: ProgressHook | None = None,
    on_metrics: MetricsHook | None = None,
    control: Stoppable | None = None,
    on_control: Callable[[str], None] | None = None,
    bucket_created_earlier: bool = False,
) -> RunResult:
    """Run one configuration of the plan (its first, when none is named) on the configured
    executor, serving metrics and taking changes (s3dlio-ray control) while it runs.

    `on_metrics` is told the port /metrics is served on, once it is; `on_control` the run's id,
    once the run takes changes.
    """
    configuration = configuration or plan.configurations[0]
    settings = configuration.settings
    exporter = None
    listener: Listener | None = None
    registered: Path | None = None
    pool: WorkerPool | None = None
    try:
        pool = _pool(plan, settings)
        executor = PhaseExecutor(
            pool,
            cluster_policy=lambda phase, overrides: cluster_policy(overrides.onto(settings), phase),
        )
        executor.on_progress = on_progress
        changer = Changer(settings, executor.adjust, asyncio.get_running_loop())
        token = new_token()
        routes = {"/control": control_app(changer, token)}
        if control is not None:
            control.attach(executor.interrupt)
            control.attach_changes(changer)
        if settings.metrics_port is not None:
            telemetry = executor.telemetry
            view = MetricsView(
                telemetry.totals.totals,
                telemetry.totals.endpoints,
                telemetry.totals.operations,
                telemetry.rates,
                telemetry.totals.concurrency,
                executor.actors_per_node(),
                telemetry.totals.training,
                telemetry.au,
                telemetry.events,
                lambda: targets(executor.overrides.onto(settings)),
                lambda: executor.overrides.paused,
                lambda: telemetry.verdict,
                telemetry.latest,
                lambda: telemetry.phase,
            )
            exporter = MetricsExporter(
                view,
                run_info(plan, settings),
                settings.metrics_host,
                settings.metrics_port,
                settings.metrics_linger,
                settings.pushgateway_url,
                routes,
            ).start()
            if on_metrics is not None and exporter.port is not None:
                on_metrics(exporter.port)
        port = exporter.port if exporter is not None else None
        if port is None:
            listener = Listener(settings.metrics_host, 0, routes)
            port = listener.port
        registered = register(plan.run_id, settings.metrics_host, port, token)
        if on_control is not None:
            on_control(plan.run_id)
        result = await run_workload(plan, configuration, executor, bucket_created_earlier)
        await pool.close()
        if exporter is not None:
            exporter.finish()
    finally:
        if control is not None:
            control.attach_changes(None)
        if registered is not None:
            registered.unlink(missing_ok=True)
        if listener is not None:
            listener.stop()
        if pool is not None:
            with contextlib.suppress(Exception):
                await pool.close()
        if exporter is not None:
            exporter.stop()
    return result
