"""One run set up and torn down: the worker pool (Ray actors, or one local engine), the phase
executor, the driver's listener (metrics, control) and the progress hook, for each configuration
in turn.

Ray is imported here only when the Ray executor is asked for, so `executor: local`, `report` and
`compare` never load it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import secrets
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from s3dlio_ray._internal.execution.build import build_engine, cluster_policy
from s3dlio_ray._internal.live.control_channel import Changer, control_app, new_token, register
from s3dlio_ray._internal.live.executor import PhaseExecutor, ProgressHook
from s3dlio_ray._internal.live.listener import Listener
from s3dlio_ray._internal.live.local_pool import LocalPool
from s3dlio_ray._internal.live.metrics import MetricsExporter, MetricsView
from s3dlio_ray._internal.live.pool import WorkerPool
from s3dlio_ray._internal.model.errors import ConfigError
from s3dlio_ray._internal.model.results import RunResult
from s3dlio_ray._internal.model.version import VERSION
from s3dlio_ray._internal.model.vocabulary import Phase
from s3dlio_ray._internal.run.runner import new_run_id, run_workload
from s3dlio_ray._internal.settings.schema import Settings
from s3dlio_ray._internal.settings.values import Executor
from s3dlio_ray._internal.storage.s3.signing import StaticCredentials

MetricsHook = Callable[[int], None]


def run_info(settings: Settings, endpoints: Sequence[str]) -> dict[str, str]:
    """Labels of the run-info metric: what ran and how; never credentials."""
    return {
        "run_id": settings.run_id or "",
        "workload": settings.name,
        "endpoint": ",".join(endpoints),
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


@dataclasses.dataclass(frozen=True)
class Target:
    """Where a run's requests go and as whom; `embedded`: our own loopback endpoint, which only
    this machine can reach."""

    endpoints: tuple[str, ...]
    credentials: StaticCredentials | None = None
    embedded: bool = False


class Stoppable(Protocol):
    """Something another thread can ask to stop or change the run (the API's RunControl)."""

    def attach(self, listener: Callable[[bool], None]) -> None:
        """`listener(skip_cleanup)` is called when the run is to stop."""
        ...

    def attach_changes(self, changer: Changer | None) -> None:
        """Changes go to `changer` from now on (None: the run takes none now)."""
        ...


async def execute_configurations(
    settings: Settings,
    target: Target,
    on_progress: ProgressHook | None = None,
    on_metrics: MetricsHook | None = None,
    control: Stoppable | None = None,
    on_control: Callable[[str], None] | None = None,
) -> list[RunResult]:
    """Each configuration in turn on the same keys, sizes and content; cleanup after the last.

    A workload without configurations is one run. After an interruption no further
    configuration starts.
    """
    if not settings.configurations:
        return [await execute(settings, target, on_progress, on_metrics, control, on_control)]
    run_id = settings.run_id or new_run_id()
    seed = settings.seed if settings.seed is not None else secrets.randbits(32)
    shared = dataclasses.replace(settings, run_id=run_id, seed=seed, configurations=())
    transfer_phases = tuple(p for p in settings.phases if p.phase != Phase.CLEANUP)
    results: list[RunResult] = []
    created = False
    for index, configuration in enumerate(settings.configurations):
        last = index == len(settings.configurations) - 1
        one = dataclasses.replace(
            shared,
            phases=settings.phases if last else transfer_phases,
            **dict(configuration.overrides),
        )
        result = await execute(
            one,
            target,
            on_progress,
            on_metrics,
            control,
            on_control,
            created,
            configuration.name,
            index == 0,
        )
        created = created or result.bucket_created
        results.append(result)
        if result.error:
            break
    return results


def _pool(settings: Settings, target: Target) -> WorkerPool:
    if settings.executor == Executor.LOCAL:
        cpus = float(len(os.sched_getaffinity(0)))
        return LocalPool(lambda: build_engine(settings, target.endpoints, target.credentials), cpus)
    from s3dlio_ray._internal.cluster.driver import RayPool

    pool = RayPool(settings, target.endpoints, target.credentials).start()
    if target.embedded and pool.elsewhere:
        raise ConfigError(
            f"the embedded S3 endpoint listens on this machine's loopback, which the cluster's "
            f"nodes on other machines ({', '.join(pool.elsewhere)}) cannot reach: give an "
            "endpoint every node reaches (--endpoint URL)"
        )
    return pool


async def execute(
    settings: Settings,
    target: Target,
    on_progress: ProgressHook | None = None,
    on_metrics: MetricsHook | None = None,
    control: Stoppable | None = None,
    on_control: Callable[[str], None] | None = None,
    bucket_created_earlier: bool = False,
    configuration: str | None = None,
    first_of_run: bool = True,
) -> RunResult:
    """Run the workload on the configured executor, serving metrics and taking changes
    (s3dlio-ray control) while it runs.

    `on_metrics` is told the port /metrics is served on, once it is; `on_control` the run's id,
    once the run takes changes.
    """
    exporter = None
    listener: Listener | None = None
    registered: Path | None = None
    pool: WorkerPool | None = None
    run_id = settings.run_id or new_run_id()
    try:
        pool = _pool(settings, target)
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
                telemetry.rates,
                telemetry.totals.concurrency,
                executor.actors_per_node(),
                telemetry.totals.training,
                telemetry.au,
                telemetry.events,
                lambda: targets(executor.overrides.onto(settings)),
                lambda: executor.overrides.paused,
            )
            exporter = MetricsExporter(
                view,
                run_info(dataclasses.replace(settings, run_id=run_id), target.endpoints),
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
        registered = register(run_id, settings.metrics_host, port, token)
        if on_control is not None:
            on_control(run_id)
        result = await run_workload(
            settings,
            target.endpoints,
            executor,
            target.credentials,
            bucket_created_earlier,
            configuration,
            first_of_run,
            run_id,
        )
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
