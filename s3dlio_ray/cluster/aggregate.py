"""Merging what actors report: live per-node totals that never go backwards, and final results."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from s3dlio_ray.engine import EngineSnapshot, PhaseResult
from s3dlio_ray.stats import OpStats


@dataclass
class ActorPhaseResult:
    """One actor's part of a phase, as its run_phase call returned it."""

    actor: str
    node: str
    result: PhaseResult


def merge_phase(phase: str, elapsed_s: float, parts: Sequence[PhaseResult]) -> PhaseResult:
    """The cluster's view of a phase: counts and histograms add, concurrency limits add up; it
    ended by what ended any share early (duration, autoterm, error), else by running out of keys."""
    merged = PhaseResult(phase, elapsed_s, OpStats())
    for part in parts:
        merged.dispatched += part.dispatched
        if merged.ended_by == "keys":
            merged.ended_by = part.ended_by
        merged.stats.merge(part.stats)
        merged.failed.update(part.failed)
        merged.verified += part.verified
        merged.verify_failures += part.verify_failures
        merged.start_concurrency += part.start_concurrency
        merged.final_concurrency += part.final_concurrency
        merged.peak_concurrency += part.peak_concurrency
        for op, stats in part.by_op.items():
            merged.by_op.setdefault(op, OpStats()).merge(stats)
    return merged


def by_node(parts: Sequence[ActorPhaseResult]) -> dict[str, OpStats]:
    nodes: dict[str, OpStats] = {}
    for part in parts:
        nodes.setdefault(part.node, OpStats()).merge(part.result.stats)
    return nodes


@dataclass(frozen=True)
class SeriesRow:
    """One second of one node's work on one operation: a row of the CSV time series."""

    time: float
    t_s: float
    node: str
    op: str
    bytes: int
    ops: int
    errors: int
    gbps: float
    concurrency: int
    in_flight: int


@dataclass
class _Task:
    node: str
    phase: str
    seen: OpStats = field(default_factory=OpStats)
    limit: int = 0
    in_flight: int = 0


class LiveTotals:
    """Cumulative per-(node, operation) statistics from the actors' running snapshots.

    Each actor task (one run_phase call) reports cumulative statistics; only what is new since its
    previous report is added, so totals only grow, a task that dies leaves what it did counted,
    and a late snapshot of a finished task is ignored.
    """

    def __init__(self) -> None:
        self.totals: dict[tuple[str, str], OpStats] = {}
        self._tasks: dict[int, _Task] = {}
        self._finished: set[int] = set()

    def observe(self, task_id: int, node: str, snapshot: EngineSnapshot | None) -> None:
        if snapshot is None or task_id in self._finished:
            return
        task = self._tasks.setdefault(task_id, _Task(node, snapshot.phase))
        self._add(task, snapshot.stats)
        task.limit, task.in_flight = snapshot.limit, snapshot.in_flight

    def finish(self, task_id: int, node: str, phase: str, final: OpStats) -> None:
        """The task's own final statistics: count what the snapshots had not yet seen."""
        if task_id in self._finished:
            return
        task = self._tasks.pop(task_id, None) or _Task(node, phase)
        self._add(task, final)
        self._finished.add(task_id)

    def abandon(self, task_id: int) -> None:
        """A task whose actor died: keep what it did, stop expecting more."""
        self._tasks.pop(task_id, None)
        self._finished.add(task_id)

    def _add(self, task: _Task, cumulative: OpStats) -> None:
        if cumulative.ops < task.seen.ops or cumulative.errors < task.seen.errors:
            return
        delta = cumulative.since(task.seen)
        self.totals.setdefault((task.node, task.phase), OpStats()).merge(delta)
        task.seen = cumulative

    def concurrency(self) -> dict[str, tuple[int, int]]:
        """(limit, in flight) per node, summed over its running tasks."""
        nodes: dict[str, tuple[int, int]] = {}
        for task in self._tasks.values():
            limit, in_flight = nodes.get(task.node, (0, 0))
            nodes[task.node] = (limit + task.limit, in_flight + task.in_flight)
        return nodes
