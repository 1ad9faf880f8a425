"""What runs on an engine for a transfer phase (PUT, GET, MIXED, LIST, STAT, DELETE, ...): the
phase's spec as executors hand it out, one `Transfer` per engine share (the operations it goes
through, what each costs for the rate limit, how one is performed on an `ObjectStore`), and what
a share counted. The engine's one run loop serves them all.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol, runtime_checkable

from s3dlio_ray._internal.execution.admission import ShareLimits
from s3dlio_ray._internal.model.copy_plan import CopySpec
from s3dlio_ray._internal.model.dataset import Dataset, steps_per_epoch
from s3dlio_ray._internal.model.keys import ListedKeys, named_by_run
from s3dlio_ray._internal.model.open_loop import Arrival
from s3dlio_ray._internal.model.results import AcceleratorEpoch
from s3dlio_ray._internal.model.sizes import ObjectSizes
from s3dlio_ray._internal.model.stats import OpStats
from s3dlio_ray._internal.model.vocabulary import Phase
from s3dlio_ray._internal.storage.object_store import ObjectStore, QuickStore
from s3dlio_ray._internal.storage.s3.client import Failed, PartGate
from s3dlio_ray._internal.tuning.pacing import RateLimit


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
    exclude_start_steps: int = 1
    exclude_end_steps: int = 0

    @property
    def steps(self) -> int:
        return steps_per_epoch(self.dataset.samples, self.batch_size, self.accelerators)


@dataclass(frozen=True)
class ReplaySpec:
    """When a replay starts, on the driver's clock (time.time()), and each node's clock less
    the driver's, as measured before it started: a node starts at its own clock's
    `start_unix + offset`, so actors on different nodes keep one schedule."""

    start_unix: float
    offsets: tuple[tuple[str, float], ...] = ()
    existing: bool = False
    names: int = 0
    """The run's own `replay-N` names it may write (N below it)."""

    def on(self, node: str) -> ReplaySpec:
        """The start as `node`'s clock reads it."""
        offset = dict(self.offsets).get(node, 0.0)
        return dataclasses.replace(self, start_unix=self.start_unix + offset, offsets=())


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
    target_bytes_per_s: float | None = None
    """The cluster's throughput target, when the tool steers toward one (the limit verdicts'
    `target`)."""
    arrival: Arrival | None = None
    """An offered load: operations issued when due (open loop), not as earlier ones end."""
    replay: ReplaySpec | None = None

    def for_node(self, node: str) -> PhaseSpec:
        """The spec as the engines of `node` run it (a copy's local path names its node, a
        replay's start is on its clock)."""
        if self.replay is not None:
            return dataclasses.replace(self, replay=self.replay.on(node))
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
    missing: tuple[str, ...] = ()
    """Keys a replay of existing data read that the store did not have."""


class Done(NamedTuple):
    """One operation done: bytes moved, time to first byte, objects it covered, and when its
    request was sent when that was after the operation started (it waited for an earlier
    operation on its key)."""

    nbytes: int = 0
    ttfb_s: float | None = None
    objects: int = 1
    sent_s: float | None = None


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


@runtime_checkable
class QuickTransfer(Transfer, Protocol):
    """A transfer whose operations can also begin without a task each (on a store's
    QuickStore): the engine's choice for a closed-loop share where the store has one."""

    def begin(
        self,
        operation: Any,
        store: QuickStore,
        gate: PartGate,
        done: Callable[[Done], None],
        failed: Failed,
    ) -> None:
        """`perform` begun: returns at once and later calls `done` with what `perform` returns,
        or `failed` with what it raises."""
        ...


TransferFactory = Callable[[PhaseSpec, Sequence[Any], ShareLimits, int], Transfer]
"""(spec, this share's items, its limits, the share's task id) -> the share's Transfer. The
items are what the phase shards: keys, a LIST's listings, a train phase's sample indices, a
copy's files."""
