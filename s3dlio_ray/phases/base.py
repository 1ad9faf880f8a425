"""What every phase module provides, and what a transfer phase needs of an object store.

A transfer phase (PUT, GET, MIXED, LIST, STAT, DELETE) is one `Transfer` per engine share: the
operations it goes through, what each costs for the rate limit, and how one is performed on an
`ObjectStore`. The engine's one run loop serves them all, whichever store (this project's client
or the boto3 baseline) is underneath. Every phase, transfer or not, is a `Step` of the run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from s3dlio_ray.config import Settings, Source
from s3dlio_ray.control import PhaseControl
from s3dlio_ray.copy_plan import CopySpec
from s3dlio_ray.dataset import Dataset, steps_per_epoch
from s3dlio_ray.errors import ConfigError, S3DlioRayError
from s3dlio_ray.keys import (
    KeyRange,
    ListedKeys,
    Listing,
    as_key_range,
    listings,
    named_by_run,
    run_prefix,
)
from s3dlio_ray.phases.existing import top_level
from s3dlio_ray.results import AcceleratorEpoch, CleanupResult, Phase, PhaseResult
from s3dlio_ray.s3.client import ObjectInfo, PartGate, S3Client
from s3dlio_ray.sizes import ObjectSizes
from s3dlio_ray.stats import OpStats
from s3dlio_ray.tuning.pacing import RateLimit
from s3dlio_ray.workload import ObjectData

Check = Callable[[memoryview, Mapping[str, str]], None]
"""Called with a GET's body and response headers while the body is still valid (the store may
reuse the buffer after)."""


class ObjectStore(Protocol):
    """The object operations an engine times and counts; each raises S3DlioRayError."""

    endpoint: str
    source_address: str | None
    on_retry: Callable[[bool], None] | None

    def answered_by(self) -> str:
        """The endpoint that answered the calling task's latest request (where its operation
        is counted)."""
        ...

    async def put(
        self, bucket: str, key: str, size: int, data: ObjectData, gate: PartGate
    ) -> None: ...

    async def get(
        self,
        bucket: str,
        key: str,
        size: int,
        gate: PartGate,
        check: Check | None,
        checksum: bool = False,
        span: tuple[int, int] | None = None,
    ) -> tuple[int, float | None]:
        """Read the object of `size` bytes, or only its `span` (offset, length) (with
        `checksum`, asking for its stored checksum; a negative `size`: not known, the first
        range tells it); answer the length read and the time to first byte."""
        ...

    async def stat(self, bucket: str, key: str) -> int:
        """HEAD the object; answer its size."""
        ...

    async def delete(self, bucket: str, key: str) -> None: ...

    async def delete_batch(self, bucket: str, keys: Sequence[str]) -> list[str]:
        """Delete up to 1,000 keys in one request; answer those the store would not delete."""
        ...

    async def list_page(
        self, bucket: str, listing: Listing, after: str | None, token: str | None, max_keys: int
    ) -> tuple[list[ObjectInfo], str | None]:
        """One LIST page of at most `max_keys` of `listing` (from `after`, or continuing at
        `token`): the objects on it and the token of the next page, None at the end."""
        ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True)
class TrainingSpec:
    """A train phase: the dataset, the cluster's accelerators, and DLIO's reader and train
    settings (a shuffle is the name its order is seeded by, or None)."""

    dataset: Dataset
    accelerators: int
    batch_size: int
    read_threads: int
    prefetch_size: int
    computation_time_s: float
    epochs: int
    file_shuffle: str | None
    sample_shuffle: str | None
    memory_budget: int | None

    @property
    def steps(self) -> int:
        return steps_per_epoch(self.dataset.samples, self.batch_size, self.accelerators)


@dataclass(frozen=True)
class PhaseSpec:
    """One transfer phase as executors hand it to engines (its keys travel apart: sharded).

    With `duration_s` the phase is timed; `rate_limit` caps the whole cluster; with
    `autoterm_window_s` the executor ends it once throughput is steady within `autoterm_pct`;
    `mix` weighs a mixed phase's operations.
    """

    phase: Phase
    bucket: str
    sizes: ObjectSizes
    seed: int
    verify: bool = True
    duration_s: float | None = None
    rate_limit: RateLimit | None = None
    autoterm_window_s: float | None = None
    autoterm_pct: float = 7.5
    mix: tuple[tuple[str, float], ...] = ()
    key_prefix: str = ""
    """The run's prefix, under which a phase's new keys go."""
    existing: bool = False
    """The keys are objects found in the bucket: only those named like this run's (under
    `key_prefix`) have content known from the seed; a mixed phase never deletes the others."""
    epochs: int = 1
    page_size: int = 1000
    delete_batch: int = 1000
    collect: bool = False
    """A LIST that keeps what it lists (names and sizes), for the phases that read it."""
    training: TrainingSpec | None = None
    copy: CopySpec | None = None
    per_node: bool = False
    """Every node does all the keys (shared among its own engines), not the cluster once."""

    def for_node(self, node: str) -> PhaseSpec:
        """The spec as the engines of `node` run it (a copy's local path names its node)."""
        if self.copy is None:
            return self
        return dataclasses.replace(self, copy=self.copy.for_node(node))

    def generated(self, key: str) -> bool:
        """Whether the object under `key` is the seed's content (checked byte for byte)."""
        return not self.existing or named_by_run(self.key_prefix, key)


@dataclass(frozen=True)
class TransferOutcome:
    """What a transfer counted beyond the engine's own statistics: verification and the check
    each object passed, per-operation statistics, and items that failed inside an operation
    that succeeded (a key a DeleteObjects batch could not delete)."""

    verified: int = 0
    verify_failures: int = 0
    by_op: Mapping[str, OpStats] = field(default_factory=dict)
    checks: Mapping[str, int] = field(default_factory=dict)
    failed: Mapping[str, str] = field(default_factory=dict)
    listed: ListedKeys | None = None
    training: tuple[AcceleratorEpoch, ...] = ()
    buffered_peak: int = 0
    """The most bytes the share held at once for reads in flight and read ahead."""
    digests: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    """What an upload stored: each name's size and CRC32."""


class Done(NamedTuple):
    """One operation done: bytes moved, time to first byte, objects it covered."""

    nbytes: int = 0
    ttfb_s: float | None = None
    objects: int = 1


class Transfer(Protocol):
    """One engine's share of a transfer phase."""

    phase: Phase

    def operations(self) -> Iterable[Any] | AsyncIterator[Any]:
        """What to do, in order; an async iterator hands operations out as they become due."""
        ...

    def cost(self, operation: Any) -> int:
        """Bytes the operation moves, for a byte rate limit."""
        ...

    async def perform(self, operation: Any, store: ObjectStore, gate: PartGate) -> Done:
        """Do one operation."""
        ...

    def outcome(self) -> TransferOutcome: ...


TransferFactory = Callable[[PhaseSpec, Sequence[str], PhaseControl, int], Transfer]
"""(spec, this share's keys, its control, the share's task id) -> the share's Transfer."""


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


class Run(Protocol):
    """What a step sees of the run it is part of (the runner's RunContext)."""

    settings: Settings
    client: S3Client
    executor: Transfers
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
        **more,
    )


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
        if self.phase == Phase.LIST and settings.source == Source.EXISTING and settings.manifest:
            raise ConfigError("phases: list with a manifest has nothing to list; leave it out")
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
