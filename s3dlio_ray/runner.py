"""Runs a workload's phases on one process: bucket set-up, PUT, GET with verification, cleanup."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from s3dlio_ray.baseline import Boto3Engine
from s3dlio_ray.cluster.aggregate import ActorPhaseResult, SeriesRow
from s3dlio_ray.config import Settings
from s3dlio_ray.control import WHOLE_PHASE, PhaseControl
from s3dlio_ray.engine import Engine, EngineSnapshot, PhaseResult
from s3dlio_ray.errors import S3DlioRayError
from s3dlio_ray.oplog import OpLog
from s3dlio_ray.s3.client import ClientOptions, S3Client
from s3dlio_ray.s3.retry import RetryPolicy
from s3dlio_ray.s3.signing import Signer, StaticCredentials, resolve_credentials, resolve_region
from s3dlio_ray.sizes import ObjectSizes
from s3dlio_ray.stats import OpStats
from s3dlio_ray.tuning.autoterm import SteadyDetector, steadiness_rate
from s3dlio_ray.tuning.profiles import Direction, Profile, select_profile, start_concurrency
from s3dlio_ray.tuning.scheduler import ConcurrencyPolicy, Mode
from s3dlio_ray.workload import ObjectData, object_keys, run_prefix, written_keys

AUTOTERM_TICK_S = 1.0

PHASE_DIRECTION = {"put": Direction.UPLOAD, "get": Direction.DOWNLOAD, "mixed": Direction.DOWNLOAD}


@dataclass
class CleanupResult:
    deleted: int = 0
    failed: list[str] = field(default_factory=list)
    aborted_uploads: int = 0
    bucket_removed: bool = False
    elapsed_s: float = 0.0


@dataclass
class RunResult:
    run_id: str
    seed: int
    endpoint: str
    bucket: str
    bucket_created: bool
    profile: str
    http_version: str
    settings: Settings
    phases: list[PhaseResult] = field(default_factory=list)
    breakdown: dict[str, list[ActorPhaseResult]] = field(default_factory=dict)
    nodes: list[str] = field(default_factory=list)
    actors: int = 1
    gather_cpu_s: float = 0.0
    gathers: int = 0
    series: list[SeriesRow] = field(default_factory=list)
    node_cpus: dict[str, float] = field(default_factory=dict)
    cleanup: CleanupResult | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        failures = sum(len(p.failed) for p in self.phases)
        cleanup_failed = bool(self.cleanup and self.cleanup.failed)
        return self.error is None and failures == 0 and not cleanup_failed


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)


def concurrency_policy(settings: Settings, profile: Profile, phase: str) -> ConcurrencyPolicy:
    """The controller's policy for a phase: fixed, target throughput, or auto."""
    lo, hi = settings.min_concurrency, settings.max_concurrency
    common = {"minimum": lo, "maximum": hi, "measure_intervals": 2, "settle_intervals": 1}
    if settings.concurrency is not None:
        return ConcurrencyPolicy(Mode.FIXED, settings.concurrency, **common)
    if settings.target_gbps:
        target = settings.target_gbps * 1e9
        direction = PHASE_DIRECTION.get(phase, Direction.DOWNLOAD)
        start = start_concurrency(profile, direction, target, lo, hi)
        return ConcurrencyPolicy(Mode.TARGET, start, target_bytes_per_s=target, **common)
    return ConcurrencyPolicy(Mode.AUTO, lo, **common)


def build_client(
    settings: Settings, endpoint: str | None, credentials: StaticCredentials | None = None
) -> S3Client:
    region = settings.region or resolve_region(settings.aws_profile)
    signer = Signer(resolve_credentials(settings.aws_profile, credentials), region)
    options = ClientOptions(
        endpoint=endpoint,
        region=region,
        http2=settings.http2,
        max_connections=max(settings.max_concurrency, settings.concurrency or 0),
        connect_timeout_s=settings.connect_timeout_s,
        timeout_s=settings.timeout_s,
        retry=RetryPolicy(max_attempts=settings.max_attempts),
        ca_bundle=settings.ca_bundle,
    )
    return S3Client(options, signer)


class TransferEngine(Protocol):
    """What runs a phase's share of keys in one process: Engine, or the boto3 baseline."""

    async def put(
        self,
        bucket: str,
        keys: Sequence[str],
        sizes: ObjectSizes,
        data: ObjectData,
        control: PhaseControl = WHOLE_PHASE,
    ) -> PhaseResult: ...

    async def get(
        self,
        bucket: str,
        keys: Sequence[str],
        sizes: ObjectSizes,
        data: ObjectData,
        verify: bool = True,
        control: PhaseControl = WHOLE_PHASE,
    ) -> PhaseResult: ...

    def snapshot(self) -> EngineSnapshot | None: ...

    def stop(self) -> None: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True)
class PhaseSpec:
    """One transfer phase as executors run it (its keys travel apart: they are sharded).

    A `timed` phase runs for the settings' duration_s.
    """

    phase: str
    bucket: str
    sizes: ObjectSizes
    seed: int
    verify: bool
    timed: bool = False


async def run_share(
    engine: TransferEngine,
    settings: Settings,
    task_id: int,
    spec: PhaseSpec,
    keys: Sequence[str],
    control: PhaseControl,
) -> PhaseResult:
    """One engine's share of a phase; what both executors run."""
    data = ObjectData(spec.seed)
    if spec.phase == "put":
        return await engine.put(spec.bucket, keys, spec.sizes, data, control)
    if spec.phase == "get":
        return await engine.get(spec.bucket, keys, spec.sizes, data, spec.verify, control)
    assert isinstance(engine, Engine), "mixed runs on the engine (the config refuses boto3)"
    new_keys = f"{keys[0].rsplit('/', 1)[0]}/mixed-{task_id}-" if keys else "mixed-"
    return await engine.mixed(
        spec.bucket,
        keys,
        spec.sizes,
        data,
        dict(settings.mix),
        control,
        new_keys,
        spec.seed + task_id,
        spec.verify,
    )


def build_engine(
    settings: Settings, endpoint: str | None, credentials: StaticCredentials | None = None
) -> TransferEngine:
    """This project's engine, or with `client: boto3` the baseline it is measured against."""
    if settings.client == "boto3":
        region = settings.region or resolve_region(settings.aws_profile)
        return Boto3Engine(endpoint, region, credentials, settings.concurrency)
    profile = select_profile(settings.profile, endpoint)
    client = build_client(settings, endpoint, credentials)
    return Engine(
        client,
        lambda phase: concurrency_policy(settings, profile, phase),
        adapt_interval_s=settings.adapt_interval_s,
        part_size=settings.part_size,
        op_log=OpLog(settings.op_log, client.endpoint_url) if settings.op_log else None,
    )


async def cleanup(client: S3Client, bucket: str, prefix: str, remove_bucket: bool) -> CleanupResult:
    """Delete the run's objects and incomplete uploads; the bucket only when asked to."""
    started = time.perf_counter()
    result = CleanupResult()
    keys = [info.key async for info in client.list_objects(bucket, prefix)]
    result.deleted, result.failed = await client.delete_objects(bucket, keys)
    for upload in await client.list_multipart_uploads(bucket, prefix):
        await client.abort_multipart_upload(bucket, upload.key, upload.upload_id)
        result.aborted_uploads += 1
    if remove_bucket and not result.failed:
        await client.delete_bucket(bucket)
        result.bucket_removed = True
    result.elapsed_s = time.perf_counter() - started
    return result


class PhaseExecutor(Protocol):
    """Runs one transfer phase over all the keys: one engine, or actors across a cluster.

    `breakdown` holds, per phase, each actor's own part of the result.
    """

    breakdown: dict[str, list[ActorPhaseResult]]

    async def run_phase(self, spec: PhaseSpec, keys: Sequence[str]) -> PhaseResult: ...


class LocalExecutor:
    """Every phase on one engine in this process."""

    def __init__(self, engine: TransferEngine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings
        self.node = socket.gethostname()
        self.breakdown: dict[str, list[ActorPhaseResult]] = {}

    async def run_phase(self, spec: PhaseSpec, keys: Sequence[str]) -> PhaseResult:
        control = phase_control(self.settings, spec, engines=1)
        watcher = asyncio.ensure_future(self._autoterm()) if self.settings.autoterm else None
        try:
            result = await run_share(self.engine, self.settings, 0, spec, keys, control)
        finally:
            if watcher is not None:
                watcher.cancel()
        if spec.phase == "put":
            result.keys_written = successful_writes(keys, result)
        self.breakdown[spec.phase] = [ActorPhaseResult(f"{self.node}/local", self.node, result)]
        return result

    async def _autoterm(self) -> None:
        """Every second, the phase's throughput since the last look; stop once it is steady."""
        detector = SteadyDetector(self.settings.autoterm_window_s, self.settings.autoterm_pct)
        started = last_t = time.perf_counter()
        last = OpStats()
        while True:
            await asyncio.sleep(AUTOTERM_TICK_S)
            snapshot = self.engine.snapshot()
            if snapshot is None:
                continue
            now = time.perf_counter()
            delta = snapshot.stats.since(last)
            last, elapsed, last_t = snapshot.stats, now - last_t, now
            if detector.add(now - started, steadiness_rate(delta.bytes, delta.ops, elapsed)):
                self.engine.stop()
                return


def phase_control(
    settings: Settings, spec: PhaseSpec, engines: int, elapsed_s: float = 0.0
) -> PhaseControl:
    """One of `engines` engines' share of the rate cap, and of the duration what is left after
    `elapsed_s` (a share reassigned from a dead actor starts late)."""
    rate = settings.rate_limit.share(engines) if settings.rate_limit else None
    if not (spec.timed and settings.duration_s):
        return PhaseControl(None, rate)
    return PhaseControl(max(0.1, settings.duration_s - elapsed_s), rate)


def is_timed(settings: Settings, index: int) -> bool:
    """Whether phase `index` runs for duration_s: a PUT that fills the key space of a later
    mixed phase writes its keys once; every other transfer phase is timed when a duration is set."""
    if settings.duration_s is None:
        return False
    return not (settings.phases[index] == "put" and "mixed" in settings.phases[index:])


def successful_writes(share: Sequence[str], result: PhaseResult) -> list[str]:
    """The keys a PUT of `share` stored: those it started, less those that failed."""
    failed = result.failed
    return [k for k in written_keys(share, result.dispatched) if k not in failed]


async def run_workload(
    settings: Settings,
    endpoint: str | None,
    executor: PhaseExecutor,
    credentials: StaticCredentials | None = None,
    bucket_created_earlier: bool = False,
) -> RunResult:
    """Run every phase the settings name; cleanup runs even when a phase failed.

    Bucket set-up and cleanup happen here, on this process's own client; the transfer phases on
    the executor. `bucket_created_earlier`: an earlier configuration of the same run created the
    bucket, so cleanup may remove it.
    """
    run_id = settings.run_id or new_run_id()
    seed = settings.seed if settings.seed is not None else secrets.randbits(32)
    profile = select_profile(settings.profile, endpoint)
    client = build_client(settings, endpoint, credentials)
    bucket = settings.bucket or f"s3dlio-ray-{run_id}".lower()
    result = RunResult(
        run_id,
        seed,
        client.endpoint_url,
        bucket,
        False,
        profile.name,
        "HTTP/2" if settings.http2 else "HTTP/1.1",
        settings,
    )
    keys: Sequence[str] = object_keys(settings.prefix, run_id, settings.objects)
    try:
        try:
            result.bucket_created = bucket_created_earlier
            if "put" in settings.phases and not await client.bucket_exists(bucket):
                result.bucket_created = await client.create_bucket(bucket)
            for index, phase in enumerate(settings.phases):
                if phase == "sleep":
                    await asyncio.sleep(settings.sleep_s)
                elif phase in PHASE_DIRECTION:
                    spec = PhaseSpec(
                        phase,
                        bucket,
                        settings.object_size,
                        seed,
                        settings.verify,
                        is_timed(settings, index),
                    )
                    done = await executor.run_phase(spec, keys)
                    result.phases.append(done)
                    if done.keys_written is not None:
                        keys, done.keys_written = done.keys_written, None
        except S3DlioRayError as exc:
            result.error = str(exc)
        result.breakdown = executor.breakdown
        if "cleanup" in settings.phases:
            remove = settings.remove_bucket == "always" or (
                settings.remove_bucket == "created" and result.bucket_created
            )
            try:
                result.cleanup = await cleanup(
                    client, bucket, run_prefix(settings.prefix, run_id), remove
                )
            except S3DlioRayError as exc:
                if result.error is None:
                    result.error = f"cleanup: {exc}"
    finally:
        with contextlib.suppress(Exception):
            await client.aclose()
    return result
