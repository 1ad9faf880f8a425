"""Runs a workload's phases in order on an executor and builds the run's result.

Bucket set-up and cleanup happen here, on the driver's own client; transfer phases on the
executor's engines. Cleanup runs even when a phase failed.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from s3dlio_ray._internal.execution.build import build_client
from s3dlio_ray._internal.execution.phases import STEPS
from s3dlio_ray._internal.execution.phases.existing import read_manifest, top_level
from s3dlio_ray._internal.execution.phases.step import planned_bounds, run_recorded
from s3dlio_ray._internal.execution.phases.transfer import PhaseSpec
from s3dlio_ray._internal.live.executor import PhaseExecutor
from s3dlio_ray._internal.model.copy_plan import CopySpec
from s3dlio_ray._internal.model.errors import ConfigError, S3DlioRayError
from s3dlio_ray._internal.model.keys import KeyRange, ListedKeys, run_prefix
from s3dlio_ray._internal.model.results import (
    CleanupResult,
    ClusterInfo,
    Environment,
    PhaseResult,
    RunResult,
)
from s3dlio_ray._internal.model.version import VERSION
from s3dlio_ray._internal.model.vocabulary import Phase
from s3dlio_ray._internal.run.plan import ConfigurationPlan, RunPlan
from s3dlio_ray._internal.settings.schema import Settings
from s3dlio_ray._internal.settings.values import Source
from s3dlio_ray._internal.storage.journal import (
    bounds_record,
    read_journal,
    record_written,
    refuse_a_used_prefix,
    write_journal,
)
from s3dlio_ray._internal.storage.s3.client import S3Client
from s3dlio_ray._internal.tuning.profiles import select_profile

VERSIONS_REPORTED = ("s3dlio-ray", "ray", "botocore", "httpx")


def _reads_existing(configuration: ConfigurationPlan) -> bool:
    return any(phase.source == Source.EXISTING for phase in configuration.phases)


def _reads_earlier_dataset(configuration: ConfigurationPlan) -> bool:
    """A train phase reading the dataset an earlier run's datagen wrote under this run id."""
    names = configuration.settings.phase_names
    trains = any(
        name == Phase.TRAIN and phase.source == Source.GENERATED
        for name, phase in zip(names, configuration.phases, strict=True)
    )
    return trains and Phase.DATAGEN not in names


DATASET_KEYS = (
    "num_files_train",
    "num_samples_per_file",
    "record_length_bytes",
    "record_length_bytes_stdev",
)


def _dataset(settings: Settings) -> dict[str, int]:
    """The settings a dataset's layout follows from (with the seed), as its journal keeps them."""
    return {key: getattr(settings, key) for key in DATASET_KEYS}


def _same_dataset(settings: Settings, journal: dict | None, where: str) -> None:
    """Refuse to train on a dataset that is not there, or laid out otherwise than these
    settings say (every sample would be read at the wrong place)."""
    written = (journal or {}).get("dataset")
    if written is None:
        raise ConfigError(
            f"train: {where} holds no dataset (no datagen's journal): run one with a datagen "
            "phase first, or check bucket, prefix and run_id"
        )
    wanted = _dataset(settings)
    differs = [key for key in DATASET_KEYS if written.get(key) != wanted[key]]
    if differs:
        key = differs[0]
        raise ConfigError(
            f"{key}: the datagen of {where} wrote {written.get(key)}, these settings say "
            f"{wanted[key]}; train with the dataset settings it was written with"
        )


def environment() -> Environment:
    """This process's Python, platform and package versions (read, not imported)."""
    versions: dict[str, str | None] = {}
    for name in VERSIONS_REPORTED:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return Environment(
        platform.python_version(), platform.platform(), platform.node(), os.cpu_count(), versions
    )


@dataclass
class RunContext:
    """What the steps of one run share while it goes."""

    configuration: ConfigurationPlan
    client: S3Client
    executor: PhaseExecutor
    run_id: str
    seed: int
    bucket: str
    keys: Sequence[str]
    bucket_created: bool = False
    phases: list[PhaseResult] = field(default_factory=list)
    cleanup: CleanupResult | None = None
    checkpoint: ListedKeys | None = None
    _existing: dict[tuple[str, str | None], ListedKeys] = field(default_factory=dict)

    @property
    def settings(self) -> Settings:
        return self.configuration.settings

    def settings_for(self, index: int) -> Settings:
        """The settings of phase `index`: the workload's, with that phase's own options."""
        return self.configuration.phases[index]

    @property
    def copy(self) -> CopySpec | None:
        return self.configuration.copy

    async def existing_keys(self, settings: Settings) -> ListedKeys:
        """The objects `source: existing` reads: a manifest's, or those under the prefix,
        listed once however many phases read them."""
        where = (settings.prefix, settings.manifest)
        if where not in self._existing:
            self._existing[where] = (
                read_manifest(settings.manifest)
                if settings.manifest
                else await self._list_existing(settings.prefix)
            )
        return self._existing[where]

    async def _list_existing(self, prefix: str) -> ListedKeys:
        """The objects under `prefix`: those directly in it as the driver's delimiter listing
        found them, and its folders listed by the actors at once, as a `list` phase of the
        run's result (what that listing costs is measured and shown)."""
        found = await top_level(self.client, self.bucket, prefix)
        listed = [(found.direct.keys, found.direct.sizes)]
        if found.folders:
            spec = PhaseSpec(
                Phase.LIST, self.bucket, self.settings.object_size, self.seed, collect=True
            )
            outcome = await run_recorded(self, spec, found.folders)
            if outcome.listed is not None:
                listed.append((outcome.listed.keys, outcome.listed.sizes))
        keys = ListedKeys.joined(listed)
        if not keys:
            raise ConfigError(
                f"source: existing: s3://{self.bucket}/{prefix} holds no objects; check bucket "
                "and prefix"
            )
        return keys


async def claim_prefix(run: RunContext) -> None:
    """Before a run writes: its bucket (created when missing), a check that its prefix holds
    nothing yet, and its journal there."""
    settings, client = run.settings, run.client
    if await client.bucket_exists(run.bucket):
        endpoints = settings.endpoint or ()
        await refuse_a_used_prefix(client, run.bucket, settings.prefix, run.run_id, endpoints)
    else:
        run.bucket_created = await client.create_bucket(run.bucket)
    planned = planned_bounds(run)
    record = {
        "version": VERSION,
        "workload": settings.name,
        "seed": run.seed,
        "bucket": run.bucket,
        "bucket_created": run.bucket_created,
        "prefix": settings.prefix,
        "objects": planned.objects,
        **bounds_record(planned),
        "object_size": settings.to_dict()["object_size"],
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if Phase.DATAGEN in settings.phase_names:
        record["dataset"] = _dataset(settings)
    await write_journal(client, run.bucket, settings.prefix, run.run_id, record)


async def run_workload(
    plan: RunPlan,
    configuration: ConfigurationPlan,
    executor: PhaseExecutor,
    bucket_created_earlier: bool = False,
) -> RunResult:
    """Run every phase of one configuration of the plan, then build its result.

    `bucket_created_earlier`: an earlier configuration of the same run created the bucket, so
    cleanup may remove it.
    """
    settings = configuration.settings
    client = build_client(settings, plan.access)
    run = RunContext(
        configuration,
        client,
        executor,
        plan.run_id,
        plan.seed,
        plan.bucket,
        KeyRange.of(settings.prefix, plan.run_id, settings.objects),
        bucket_created_earlier,
    )
    error = None
    claimed = False  # whether the run got to its phases (one that writes: its prefix claimed)
    writes = bool(
        {Phase.PUT, Phase.MIXED, Phase.CHECKPOINT, Phase.DATAGEN} & set(settings.phase_names)
    ) or (Phase.REPLAY in settings.phase_names and not settings.existing)
    try:
        try:
            earlier = plan.run_id_given and _reads_earlier_dataset(configuration)
            if plan.run_id_given and (earlier or _reads_existing(configuration)):
                journal = await read_journal(client, run.bucket, settings.prefix, plan.run_id)
                if earlier:
                    where = f"s3://{run.bucket}/{run_prefix(settings.prefix, plan.run_id)}"
                    _same_dataset(settings, journal, where)
                if not plan.seed_given and journal:
                    run.seed = int(journal["seed"])
            if writes and configuration.first:
                await claim_prefix(run)
            claimed = True
            for index, phase in enumerate(settings.phase_names):
                if executor.interrupted:
                    break
                if phase != Phase.CLEANUP:
                    await STEPS[phase].run(run, index)
            # A phase that failed, or one whose actors were lost, leaves the planned bounds.
            if writes and not any(p.partial for p in run.phases):
                await record_written(
                    client,
                    run.bucket,
                    settings.prefix,
                    plan.run_id,
                    executor.written,
                    configuration.first,
                )
        except ConfigError:
            raise
        except S3DlioRayError as exc:
            error = str(exc)
        if executor.interrupted:
            error = error or "interrupted: the run was stopped before its phases were done"
        # A run stopped before it claimed its prefix wrote nothing to clean up (unless it
        # created its bucket), and asking a store that failed it already would only wait again.
        began = claimed or run.bucket_created or not writes
        if Phase.CLEANUP in settings.phase_names and not executor.skip_cleanup and began:
            try:
                await STEPS[Phase.CLEANUP].run(run, settings.phase_names.index(Phase.CLEANUP))
            except S3DlioRayError as exc:
                error = error or f"cleanup: {exc}"
    finally:
        with contextlib.suppress(Exception):
            await client.aclose()
    pool = executor.pool
    return RunResult(
        run_id=plan.run_id,
        workload=settings.name,
        seed=run.seed,
        endpoint=client.endpoint_url,
        endpoints=tuple(client.endpoint_urls),
        bucket=run.bucket,
        bucket_created=run.bucket_created,
        profile=select_profile(settings.profile, plan.access.first).name,
        http_version="HTTP/2" if settings.http2 else "HTTP/1.1",
        settings=settings.to_dict(),
        environment=environment(),
        cluster=ClusterInfo(
            executor=pool.executor,
            nodes=tuple(executor.nodes),
            actors=len(pool.workers),
            node_cpus=dict(pool.node_cpus),
            driver_gather_cpu_s=executor.gather_cpu_s,
            gathers=executor.gathers,
        ),
        phases=tuple(run.phases),
        timeseries=tuple(executor.telemetry.series),
        events=tuple(executor.telemetry.events),
        cleanup=run.cleanup,
        error=error,
        configuration=configuration.name,
        tool_version=VERSION,
    )
