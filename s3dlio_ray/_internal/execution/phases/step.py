"""What the driver runs for each entry of a workload's `phases`: a `Step` of the run, and for
a transfer phase the step that shards its keys over the executor's engines and records its
result.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from s3dlio_ray._internal.execution.phases.existing import top_level
from s3dlio_ray._internal.execution.phases.transfer import PhaseSpec
from s3dlio_ray._internal.model.copy_plan import CopySpec
from s3dlio_ray._internal.model.errors import S3DlioRayError
from s3dlio_ray._internal.model.keys import (
    KeyBounds,
    KeyRange,
    ListedKeys,
    as_key_range,
    listings,
    run_prefix,
)
from s3dlio_ray._internal.model.results import CleanupResult, PhaseResult
from s3dlio_ray._internal.model.vocabulary import Phase
from s3dlio_ray._internal.settings.schema import Settings
from s3dlio_ray._internal.settings.values import Source
from s3dlio_ray._internal.storage.s3.client import S3Client


@dataclass(frozen=True)
class PhaseOutcome:
    """A transfer phase's result; for a PUT the keys it stored (what the next phase reads), for
    a collecting LIST what it found; the error that ended it, when one did."""

    result: PhaseResult
    written: KeyRange | None
    fatal: str | None = None
    listed: ListedKeys | None = None
    digests: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    """What an upload stored: each name's size and CRC32, from every share."""


class Transfers(Protocol):
    """What runs transfer phases for a run: the executor, over its engines."""

    @property
    def engines(self) -> int:
        """Engines alive to take a share (a checkpoint has one shard each)."""
        ...

    @property
    def nodes(self) -> list[str]:
        """The nodes the engines run on (a train phase has accelerators on each)."""
        ...

    @property
    def interrupted(self) -> bool:
        """The run was asked to stop: start no further phase."""
        ...

    async def run_phase(self, spec: PhaseSpec, keys: Sequence[str]) -> PhaseOutcome: ...

    async def pause(self, seconds: float) -> None:
        """Sleep, ending early if the run is interrupted."""
        ...

    async def clock_offsets(self) -> dict[str, float]:
        """Each node's wall clock less the driver's, measured now."""
        ...


class Run(Protocol):
    """What a step sees of the run it is part of (the runner's RunContext)."""

    @property
    def settings(self) -> Settings:
        """The settings of the configuration running (each phase's: settings_for)."""
        ...

    client: S3Client

    @property
    def executor(self) -> Transfers:
        """What runs the run's transfer phases (read-only here: a step never swaps it)."""
        ...

    run_id: str
    seed: int
    bucket: str
    keys: Sequence[str]
    bucket_created: bool
    phases: list[PhaseResult]
    cleanup: CleanupResult | None
    checkpoint: ListedKeys | None
    """The latest checkpoint's shards (what a restore reads)."""

    def settings_for(self, index: int) -> Settings: ...

    @property
    def copy(self) -> CopySpec | None:
        """What an upload or download phase copies (the run's plan made it)."""
        ...

    async def existing_keys(self, settings: Settings) -> ListedKeys:
        """The objects `source: existing` reads: from the manifest, or listed once per run."""
        ...


class Step(Protocol):
    """One entry of a workload's `phases`, run by the driver."""

    async def run(self, run: Run, index: int) -> None: ...


def is_timed(phases: Sequence[Phase], index: int, duration_s: float | None) -> bool:
    """Whether phase `index` runs for duration_s: a PUT that fills the key space of a later
    mixed phase writes its keys once, a DELETE deletes each key once; every other transfer phase
    is timed when a duration is set."""
    if duration_s is None or phases[index] == Phase.DELETE:
        return False
    return not (phases[index] == Phase.PUT and Phase.MIXED in phases[index:])


def planned_bounds(run: Run) -> KeyBounds:
    """What a run's phases may write before any of them has ended: its objects (a PUT's) and
    dataset files, a shard per engine of each checkpoint, and no bound on later rounds or mixed keys
    where it has a timed PUT or a mixed phase (none of them where it has not)."""
    names = run.settings.phase_names
    timed_put = any(
        name == Phase.PUT and is_timed(names, index, run.settings_for(index).duration_s)
        for index, name in enumerate(names)
    )
    dataset = {Phase.DATAGEN, Phase.TRAIN} & set(names)
    return KeyBounds(
        run.settings.objects if Phase.PUT in names else 0,
        run.settings.num_files_train if dataset else 0,
        None if timed_put else 0,
        None if Phase.MIXED in names else (0, 0),
        (names.count(Phase.CHECKPOINT), run.executor.engines),
        None if Phase.REPLAY in names else 0,
    )


def spec_of(run: Run, settings: Settings, phase: Phase, **more: Any) -> PhaseSpec:
    """Phase `phase`'s spec from the run and the phase's settings: what every phase takes from
    them (bucket, sizes, seed, verification, rate cap, the run's prefix), and `more`."""
    return PhaseSpec(
        phase,
        run.bucket,
        settings.object_size,
        run.seed,
        settings.verify,
        rate_limit=settings.rate_limit,
        key_prefix=run_prefix(settings.prefix, run.run_id),
        target_bytes_per_s=cluster_target(settings, run.executor.engines),
        arrival=settings.arrival,
        **more,
    )


def cluster_target(settings: Settings, engines: int) -> float | None:
    """The whole cluster's throughput target in bytes/s: the cluster controller's, or each
    actor's times the actors (None: none)."""
    if settings.concurrency is not None:
        return None
    if settings.cluster_target_gbps:
        return settings.cluster_target_gbps * 1e9
    return settings.target_gbps * 1e9 * engines if settings.target_gbps else None


async def run_recorded(
    run: Run,
    spec: PhaseSpec,
    keys: Sequence[Any],
    described: Callable[[PhaseResult], PhaseResult] | None = None,
) -> PhaseOutcome:
    """Run a transfer phase on the run's executor and add its result (as `described` completes
    it) to the run's; the error that ended it, if one did, is raised once the result is
    recorded."""
    outcome = await run.executor.run_phase(spec, keys)
    run.phases.append(described(outcome.result) if described else outcome.result)
    if outcome.fatal is not None:
        raise S3DlioRayError(outcome.fatal)
    return outcome


class TransferStep:
    """A transfer phase as a step of the run: its keys (this run's, or existing data's) sharded
    over the executor's engines; a PUT hands the keys it stored to the phases after it, a DELETE
    of this run's keys leaves none to them."""

    def __init__(self, phase: Phase) -> None:
        self.phase = phase

    async def _keys(self, run: Run, settings: Settings) -> Sequence[Any]:
        existing = settings.source == Source.EXISTING
        if self.phase == Phase.LIST:
            if existing and settings.manifest is None:
                found = await top_level(run.client, run.bucket, settings.prefix)
                return found.parts(settings.prefix)
            if not existing:
                return listings(as_key_range(run.keys), settings.page_size)
        return await run.existing_keys(settings) if existing else run.keys

    async def run(self, run: Run, index: int) -> None:
        settings = run.settings_for(index)
        keys = await self._keys(run, settings)
        timed = is_timed(run.settings.phase_names, index, settings.duration_s)
        spec = spec_of(
            run,
            settings,
            self.phase,
            duration_s=settings.duration_s if timed else None,
            autoterm_window_s=settings.autoterm_window_s if settings.autoterm else None,
            autoterm_pct=settings.autoterm_pct,
            mix=settings.mix,
            existing=settings.source == Source.EXISTING,
            epochs=settings.epochs,
            page_size=settings.page_size,
            delete_batch=settings.delete_batch,
        )
        outcome = await run_recorded(run, spec, keys)
        if outcome.written is not None:
            run.keys = outcome.written
        if self.phase == Phase.DELETE and not spec.existing:
            run.keys = KeyRange(as_key_range(run.keys).prefix)
