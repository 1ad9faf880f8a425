"""A run's plan: what the settings leave open, decided once, before anything starts, by one
function. The run id, the seed, the bucket, where requests go and as whom (endpoints parsed into
typed values, the region, the credentials' source), the settings of each configuration and of
each of its phases, and what a copy moves and where: the launcher, the runner, the client
builder and the actors read them here, or take the part they need, and derive none of them
again."""

from __future__ import annotations

import dataclasses
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from s3dlio_ray._internal.model.copy_plan import NODE, CopySpec, S3Location
from s3dlio_ray._internal.model.endpoint import Endpoint
from s3dlio_ray._internal.model.errors import ConfigError
from s3dlio_ray._internal.model.vocabulary import Phase
from s3dlio_ray._internal.settings.schema import Settings
from s3dlio_ray._internal.settings.values import Executor
from s3dlio_ray._internal.storage.access import Access
from s3dlio_ray._internal.storage.network import spread_over_addresses
from s3dlio_ray._internal.storage.s3.signing import StaticCredentials, resolve_region
from s3dlio_ray._internal.tuning.parts import MIB


@dataclass(frozen=True)
class ConfigurationPlan:
    """One configuration of the run (the whole run when the workload names none): its settings
    and each phase's, with that phase's own options applied."""

    name: str | None
    settings: Settings
    phases: tuple[Settings, ...]
    first: bool
    """No earlier configuration wrote under the run's prefix (a run that writes claims it)."""
    last: bool
    """Cleanup, when the workload has one, runs after this one."""
    copy: CopySpec | None = None
    """What an upload or download phase copies, and where."""


@dataclass(frozen=True, repr=False)
class RunPlan:
    settings: Settings
    """The workload's settings, with the run id filled in."""
    run_id: str
    run_id_given: bool
    """The run id was given: the run may read what an earlier run under it wrote."""
    seed: int
    seed_given: bool
    """The seed was given; otherwise a run reading an earlier run's data takes that run's."""
    bucket: str
    access: Access
    credentials_source: str
    """Where the credentials come from, in words (never the credentials)."""
    configurations: tuple[ConfigurationPlan, ...]

    def __repr__(self) -> str:
        endpoints = ", ".join(e.label for e in self.access.endpoints) or "AWS S3"
        return (
            f"RunPlan(run_id={self.run_id!r}, bucket={self.bucket!r}, endpoints=[{endpoints}], "
            f"credentials: {self.credentials_source}, configurations={len(self.configurations)})"
        )


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)


SMALL_OBJECTS = 100
SMALL_BYTES = 64 * MIB
"""A job at most this big (and not timed, not training, one configuration) is small: starting
Ray would take longer than the job (a one-file copy took 29 s on Ray, 1.7 s in-process)."""
SMALL_PHASES = {Phase.PUT, Phase.GET, Phase.STAT, Phase.DELETE, Phase.LIST, Phase.CLEANUP}


def small_job(settings: Settings) -> bool:
    """A one-file copy, or a few objects of a few phases: done before Ray would have started."""
    if settings.copy_from is not None:
        return not settings.recursive and not settings.per_node
    timed = settings.duration_s is not None or settings.autoterm
    largest = max(settings.object_size.minimum, settings.object_size.maximum)
    return (
        not timed
        and not settings.configurations
        and set(settings.phase_names) <= SMALL_PHASES
        and settings.objects <= SMALL_OBJECTS
        and settings.objects * largest <= SMALL_BYTES
    )


def choose_executor(settings: Settings) -> Executor:
    """`executor: auto` decided: in this process for a small job when no Ray cluster runs (so
    Ray is not even imported), else Ray."""
    if settings.executor != Executor.AUTO:
        return settings.executor
    if not small_job(settings) or settings.ray_address:
        return Executor.RAY
    from s3dlio_ray._internal.cluster.driver import cluster_running

    return Executor.RAY if cluster_running() else Executor.LOCAL


def plan_run(
    settings: Settings,
    endpoints: Sequence[str] | None = None,
    credentials: StaticCredentials | None = None,
    *,
    embedded: bool = False,
) -> RunPlan:
    """The plan of a run of `settings`; `endpoints` and `credentials` replace the settings' own
    (the embedded endpoint's URL and keys, with `embedded`)."""
    run_id_given = settings.run_id is not None
    run_id = settings.run_id or new_run_id()
    # An op-log's path made absolute: actors write on their own nodes, from their own working
    # directories.
    op_log = str(Path(settings.op_log).absolute()) if settings.op_log else None
    executor = choose_executor(settings)
    settings = dataclasses.replace(settings, run_id=run_id, op_log=op_log, executor=executor)
    access = plan_access(settings, endpoints, credentials, embedded)
    return RunPlan(
        settings=settings,
        run_id=run_id,
        run_id_given=run_id_given,
        seed=settings.seed if settings.seed is not None else secrets.randbits(32),
        seed_given=settings.seed is not None,
        bucket=settings.bucket or f"s3dlio-ray-{run_id}".lower(),
        access=access,
        credentials_source=_credentials_source(settings, credentials, embedded),
        configurations=_configurations(settings),
    )


def plan_access(
    settings: Settings,
    endpoints: Sequence[str] | None = None,
    credentials: StaticCredentials | None = None,
    embedded: bool = False,
) -> Access:
    """How the settings reach the store: endpoints parsed (and spread over their addresses),
    region, credentials. Alone, for what needs only that (storing the result files)."""
    parsed = tuple(Endpoint.parse(url) for url in endpoints or settings.endpoint or ())
    if settings.resolve_host:
        parsed = spread_over_addresses(parsed)
    region = settings.region or resolve_region(settings.aws_profile)
    return Access(parsed, region, credentials, embedded)


def _credentials_source(
    settings: Settings, credentials: StaticCredentials | None, embedded: bool
) -> str:
    if embedded:
        return "the embedded endpoint's own keys"
    if credentials is not None:
        return "keys given to the run"
    if settings.aws_profile:
        return f"AWS profile {settings.aws_profile}"
    return "botocore's chain (environment, config and credentials files, instance metadata)"


def _phases(settings: Settings) -> tuple[Settings, ...]:
    return tuple(settings.for_phase(index) for index in range(len(settings.phases)))


def _configurations(settings: Settings) -> tuple[ConfigurationPlan, ...]:
    """Each configuration in turn on the same keys, sizes and content; cleanup after the last."""
    if not settings.configurations:
        return (ConfigurationPlan(None, settings, _phases(settings), True, True, _copy(settings)),)
    transfers = tuple(entry for entry in settings.phases if entry.phase != Phase.CLEANUP)
    count = len(settings.configurations)
    planned = []
    for index, configuration in enumerate(settings.configurations):
        last = index == count - 1
        one = dataclasses.replace(
            settings,
            phases=settings.phases if last else transfers,
            configurations=(),
            **dict(configuration.overrides),
        )
        planned.append(
            ConfigurationPlan(configuration.name, one, _phases(one), index == 0, last, _copy(one))
        )
    return tuple(planned)


def _copy(settings: Settings) -> CopySpec | None:
    """The copy the settings ask for, if they ask for one; ConfigError in one line when it
    cannot be."""
    if not {Phase.UPLOAD, Phase.DOWNLOAD} & set(settings.phase_names):
        return None
    source, destination = settings.copy_from, settings.copy_to
    assert source is not None and destination is not None, "the rules require both"
    upward = destination.startswith("s3://")
    if upward == source.startswith("s3://"):
        raise ConfigError(
            "cp: copies between a local path and s3://BUCKET/PREFIX: one of the two must be each"
        )
    local, remote = (source, destination) if upward else (destination, source)
    location = S3Location.parse(remote)
    if upward:
        if NODE in local:
            raise ConfigError("cp: {node} names each node's own destination: downloads only")
        if settings.per_node:
            raise ConfigError(
                "per_node: every node gets its own copy of a download; an upload "
                "reads one shared source: leave per_node out"
            )
        path = Path(local)
        if not path.exists():
            raise ConfigError(f"cp: {local}: no such file or folder")
        if path.is_dir() and not settings.recursive:
            raise ConfigError(f"cp: {local} is a folder: add --recursive to copy what is in it")
        single = not path.is_dir()
    else:
        single = not settings.recursive
        if single and Path(local).is_dir() and not local.endswith("/"):
            local += "/"
        if single and (not location.prefix or location.prefix.endswith("/")):
            raise ConfigError(
                f"cp: {remote} names no object: add --recursive to copy what is under it"
            )
    return CopySpec(
        local,
        location,
        single,
        settings.per_node,
        settings.sync,
        settings.clobber,
        settings.checksum_headers,
    )
