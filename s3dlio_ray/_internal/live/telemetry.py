"""The driver's live view of a run: cumulative per-(node, operation) totals that never go
backwards, per-second rates, the CSV time series, and the progress line's numbers.

Both executors feed it the same way (engine snapshots each tick, a share's final statistics when
it ends), so a local run has the same time series and metrics as a Ray run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

from s3dlio_ray._internal.execution.engine import EngineSnapshot
from s3dlio_ray._internal.model.bottleneck import Cap, PhaseBottleneck, judge
from s3dlio_ray._internal.model.resources import NodeSecond, ResourceTracker
from s3dlio_ray._internal.model.results import ConfigEvent, SeriesRow
from s3dlio_ray._internal.model.stats import OpStats
from s3dlio_ray._internal.model.utilization import UtilizationProgress
from s3dlio_ray._internal.model.vocabulary import Limit, Phase
from s3dlio_ray._internal.tuning.autoterm import steadiness_rate

EndpointStats = Mapping[str, OpStats]


@dataclass
class _Task:
    node: str
    phase: str
    seen: OpStats = field(default_factory=OpStats)
    seen_endpoints: dict[str, OpStats] = field(default_factory=dict)
    seen_operations: dict[str, OpStats] = field(default_factory=dict)
    limit: int = 0
    in_flight: int = 0
    seen_training: UtilizationProgress = field(default_factory=UtilizationProgress)
    throttles: int = 0


class LastSeen(NamedTuple):
    """What a task's last snapshot showed: cumulative statistics, per endpoint, per operation."""

    stats: OpStats
    by_endpoint: dict[str, OpStats]
    by_op: dict[str, OpStats]


class LiveTotals:
    """Cumulative per-(node, operation) statistics from the engines' running snapshots.

    Each share (one task) reports cumulative statistics; only what is new since its previous
    report is added, so totals only grow, a task that dies leaves what it did counted, and a late
    snapshot of a finished task is ignored.
    """

    def __init__(self) -> None:
        self.totals: dict[tuple[str, str], OpStats] = {}
        self.endpoints: dict[tuple[str, str, str], OpStats] = {}
        """The same per (node, operation, endpoint that answered)."""
        self.operations: dict[tuple[str, str, str], OpStats] = {}
        """A mixed phase's per (node, phase, operation within it)."""
        self.training: dict[str, UtilizationProgress] = {}
        """A train phase's accelerators per node: compute and counted time, samples, epoch."""
        self.ended: dict[str, tuple[int, int]] = {}
        """Per node, the limit and the most requests in flight of the shares that have ended
        (what a phase too short for a tick ran at)."""
        self.throttles: dict[tuple[str, str], int] = {}
        """Per (node, phase): requests retried because the endpoint throttled."""
        self.resources = ResourceTracker()
        self._tasks: dict[int, _Task] = {}
        self._finished: set[int] = set()

    def observe(self, task_id: int, node: str, snapshot: EngineSnapshot | None) -> None:
        if snapshot is None or task_id in self._finished:
            return
        if task_id not in self._tasks and snapshot.host_at_start is not None:
            lag, ticks = snapshot.loop_lag_s, snapshot.loop_ticks
            self.resources.observe(node, snapshot.host_at_start, lag, ticks, start=True)
        task = self._tasks.setdefault(task_id, _Task(node, str(snapshot.phase)))
        self._add(task, snapshot.stats, snapshot.by_endpoint, snapshot.by_op)
        self._throttled(task, snapshot.throttles)
        task.limit, task.in_flight = snapshot.limit, snapshot.in_flight
        if snapshot.host is not None:
            self.resources.observe(node, snapshot.host, snapshot.loop_lag_s, snapshot.loop_ticks)
        if snapshot.training is not None:
            self._add_training(task, snapshot.training)

    def finish(
        self,
        task_id: int,
        node: str,
        phase: str,
        final: OpStats,
        by_endpoint: EndpointStats,
        training: UtilizationProgress | None = None,
        by_op: Mapping[str, OpStats] | None = None,
        concurrency: tuple[int, int] = (0, 0),
        throttles: int = 0,
    ) -> None:
        """The task's own final statistics: count what the snapshots had not yet seen."""
        if task_id in self._finished:
            return
        task = self._tasks.pop(task_id, None) or _Task(node, str(phase))
        limit, in_flight = self.ended.get(node, (0, 0))
        self.ended[node] = (limit + concurrency[0], in_flight + concurrency[1])
        self._add(task, final, by_endpoint, by_op or {})
        self._throttled(task, throttles)
        if training is not None:
            self._add_training(task, training)
        self._finished.add(task_id)

    def _throttled(self, task: _Task, cumulative: int) -> None:
        if cumulative > task.throttles:
            key = (task.node, task.phase)
            self.throttles[key] = self.throttles.get(key, 0) + cumulative - task.throttles
            task.throttles = cumulative

    def _add_training(self, task: _Task, cumulative: UtilizationProgress) -> None:
        seen, task.seen_training = task.seen_training, cumulative
        total = self.training.get(task.node, UtilizationProgress())
        self.training[task.node] = total + (cumulative - seen)

    def abandon(self, task_id: int) -> LastSeen:
        """A task whose engine died: keep what it did, stop expecting more; answer what its
        last snapshot showed."""
        task = self._tasks.pop(task_id, None)
        self._finished.add(task_id)
        if task is None:
            return LastSeen(OpStats(), {}, {})
        return LastSeen(task.seen, task.seen_endpoints, task.seen_operations)

    def _add(
        self,
        task: _Task,
        cumulative: OpStats,
        by_endpoint: EndpointStats,
        by_op: Mapping[str, OpStats],
    ) -> None:
        if cumulative.ops < task.seen.ops or cumulative.errors < task.seen.errors:
            return
        delta = cumulative.since(task.seen)
        self.totals.setdefault((task.node, task.phase), OpStats()).merge(delta)
        task.seen = cumulative
        for endpoint, stats in by_endpoint.items():
            seen = task.seen_endpoints.get(endpoint, OpStats())
            key = (task.node, task.phase, endpoint)
            self.endpoints.setdefault(key, OpStats()).merge(stats.since(seen))
            task.seen_endpoints[endpoint] = stats
        if task.phase != Phase.MIXED:
            return
        for op, stats in by_op.items():
            seen = task.seen_operations.get(op, OpStats())
            key = (task.node, task.phase, op)
            self.operations.setdefault(key, OpStats()).merge(stats.since(seen))
            task.seen_operations[op] = stats

    def concurrency(self) -> dict[str, tuple[int, int]]:
        """(limit, in flight) per node, summed over its running tasks."""
        nodes: dict[str, tuple[int, int]] = {}
        for task in self._tasks.values():
            limit, in_flight = nodes.get(task.node, (0, 0))
            nodes[task.node] = (limit + task.limit, in_flight + task.in_flight)
        return nodes


@dataclass
class Progress:
    """What the live progress line shows."""

    phase: Phase
    done: int
    errors: int
    gbps: float
    limit: int
    in_flight: int
    node_gbps: dict[str, float] = field(default_factory=dict)
    au: float | None = None
    """A train phase: the cluster's accelerator utilization over the last second."""
    epoch: int | None = None
    paused: bool = False
    """`s3dlio-ray control --pause` holds the run: no rate is a measurement now."""
    limit_kind: str | None = None
    """What limits the cluster over the phase's last minute (a Limit), once a rule holds."""


LIVE_VERDICT_S = 60
"""The live verdict (the metrics') judges the running phase's last this many seconds."""

SHORTEST_ROW_S = 0.5
"""No row covers less: a tick that comes this soon after the one before (after a slow gather)
is left for the next, and a phase's last interval this short joins the row before it. The
bytes that finished in a few milliseconds are not a rate."""


class Telemetry:
    """Live totals, the rates since the previous sample, and the time series rows."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self.totals = LiveTotals()
        self.rates: dict[tuple[str, str], float] = {}
        self.series: list[SeriesRow] = []
        self._clock = clock
        self._started = self._last_sample = clock()
        self._sampled: dict[tuple[str, str], OpStats] = {}
        self._sampled_ops: dict[tuple[str, str, str], OpStats] = {}
        self._sampled_training: dict[str, UtilizationProgress] = {}
        self.au: dict[str, float] = {}
        """Each node's accelerator utilization over the last sample (a train phase)."""
        self.events: list[ConfigEvent] = []
        self._first_unmarked = 0
        """The first event not yet on a row of the series: the next sample's rows carry it."""
        self._phase_rows: dict[tuple[str, str], int] = {}
        """The running phase's latest row per (node, operation): where a short final one goes."""
        self._concurrency: dict[str, tuple[int, int]] = {}
        """Each node's limit and requests in flight at the phase's latest tick."""
        self.seconds: list[NodeSecond] = []
        """The running phase's seconds per node: what its limit verdicts judge."""
        self._recent = 0
        """The first of `seconds` inside the live verdict's window (they come in time order)."""
        self._latest: dict[str, NodeSecond] = {}
        self._throttles_seen: dict[tuple[str, str], int] = {}
        self.verdict: PhaseBottleneck | None = None
        """The running phase's limits over its last LIVE_VERDICT_S (the metrics show it);
        the whole phase's once it ended."""
        self.phase = ""
        self.caps: tuple[Cap, ...] = ()

    def mark(self, changes: Mapping[str, Any]) -> None:
        """Record settings changed while the run goes."""
        self.events.append(ConfigEvent(time.time(), self._clock() - self._started, dict(changes)))

    def begin(self, phase: Phase, caps: Sequence[Cap] = ()) -> None:
        """A phase starts: its first row covers its own time, not the pause before it; `caps`:
        the tool's own caps on it, which the live verdict sets beside its last minute."""
        self._last_sample = self._clock()
        self._phase_rows.clear()
        self._concurrency.clear()
        self.totals.ended.clear()
        self.seconds = []
        self._latest = {}
        self._recent = 0
        self.verdict = None
        self.phase = str(phase)
        self.caps = tuple(caps)

    def sample(self, phase: Phase, final: bool = False) -> float | None:
        """Rates since the previous sample, and one time-series row per node for this phase (a
        mixed phase also one per node and operation).

        Taken every tick and once more when the phase ends (`final`), so the rows of a phase add
        up to exactly what its result counts (when no engine died); see SHORTEST_ROW_S for a
        short interval. Answers the phase's cluster-wide rate for autoterm (None: the tick came
        too soon to measure one).
        """
        now = self._clock()
        elapsed = max(now - self._last_sample, 1e-9)
        if not final and elapsed < SHORTEST_ROW_S:
            return None
        if not final:
            self._concurrency = self.totals.concurrency()
        elif not self._concurrency:
            self._concurrency = dict(self.totals.ended)
        self._utilization()
        moved_bytes = moved_ops = 0
        unmarked = self.events[self._first_unmarked :]
        event = "; ".join(e.describe() for e in unmarked) or None
        marked = False
        for (node, op), stats in self.totals.totals.items():
            delta = stats.since(self._sampled.get((node, op), OpStats()))
            self.rates[(node, op)] = delta.bytes / elapsed
            self._sampled[(node, op)] = stats.copy()
            if op == phase:
                moved_bytes += delta.bytes
                moved_ops += delta.ops
                second = self._second(node, phase, delta, now, elapsed, final)
                self._row(node, phase, str(phase), delta, now, elapsed, event, final, second)
                marked = True
        for (node, op_phase, op), stats in self.totals.operations.items():
            if op_phase == phase:
                delta = stats.since(self._sampled_ops.get((node, op_phase, op), OpStats()))
                self._sampled_ops[(node, op_phase, op)] = stats.copy()
                self._row(node, phase, op, delta, now, elapsed, None, final)
        if marked:
            self._first_unmarked = len(self.events)
        self._last_sample = now
        if not final:
            cutoff = now - self._started - LIVE_VERDICT_S
            while self._recent < len(self.seconds) and self.seconds[self._recent].t_s < cutoff:
                self._recent += 1
            recent = self.seconds[self._recent :]
            self.verdict = judge(recent, self._live_caps(recent))
        return steadiness_rate(moved_bytes, moved_ops, elapsed)

    def _live_caps(self, recent: Sequence[NodeSecond]) -> list[Cap]:
        """The caps beside the cluster's rates over `recent`."""
        if not self.caps or not recent:
            return []
        span = max(s.t_s for s in recent) - min(s.t_s - s.interval_s for s in recent)
        if span <= 0:
            return []
        nbytes, requests = sum(s.bytes for s in recent), sum(s.requests for s in recent)
        return [cap.reached(nbytes / span, requests / span) for cap in self.caps]

    def latest(self) -> dict[str, NodeSecond]:
        """Each node's latest second of the running (or last) phase."""
        return dict(self._latest)

    def _second(
        self, node: str, phase: Phase, delta: OpStats, now: float, elapsed: float, final: bool
    ) -> NodeSecond | None:
        """The node's interval as the limit verdicts read it (None: too short to be one)."""
        key = (node, str(phase))
        throttles = self.totals.throttles.get(key, 0)
        fresh = throttles - self._throttles_seen.get(key, 0)
        self._throttles_seen[key] = throttles
        figures = self.totals.resources.interval(node)
        if final and elapsed < SHORTEST_ROW_S:
            return None
        limit, in_flight = self._concurrency.get(node, (0, 0))
        second = NodeSecond(
            node,
            now - self._started,
            elapsed,
            bytes=delta.bytes,
            requests=delta.latency.count,
            limit=limit,
            in_flight=in_flight,
            latency_p50_s=delta.latency.percentile(0.5) if delta.latency.count else None,
            ttfb_p50_s=delta.ttfb.percentile(0.5) if delta.ttfb.count else None,
            retries=delta.retries,
            throttles=fresh,
            **figures,
        )
        self.seconds.append(second)
        self._latest[node] = second
        return second

    def _row(
        self,
        node: str,
        phase: Phase,
        op: str,
        delta: OpStats,
        now: float,
        elapsed: float,
        event: str | None,
        final: bool,
        second: NodeSecond | None = None,
    ) -> None:
        """Append the interval's row, or, for a short final interval, add it to the row before."""
        index = self._phase_rows.get((node, op))
        if final and elapsed < SHORTEST_ROW_S and index is not None:
            before = self.series[index]
            interval = (before.interval_s or 0.0) + elapsed
            moved = before.bytes + delta.bytes
            events = "; ".join(e for e in (before.event, event) if e) or None
            self.series[index] = replace(
                before,
                time=time.time(),
                t_s=now - self._started,
                bytes=moved,
                ops=before.ops + delta.ops,
                errors=before.errors + delta.errors,
                gbps=moved / interval / 1e9,
                interval_s=interval,
                event=events,
            )
            return
        limit, in_flight = self._concurrency.get(node, (0, 0))
        training = self.totals.training.get(node) if phase == Phase.TRAIN else None
        self._phase_rows[(node, op)] = len(self.series)
        self.series.append(
            SeriesRow(
                time=time.time(),
                t_s=now - self._started,
                node=node,
                op=op,
                bytes=delta.bytes,
                ops=delta.ops,
                errors=delta.errors,
                gbps=delta.bytes / elapsed / 1e9,
                concurrency=limit,
                in_flight=in_flight,
                au=self.au.get(node) if training is not None else None,
                event=event,
                phase=str(phase),
                interval_s=elapsed,
                epoch=training.epoch if training is not None else None,
                **resource_columns(second),
            )
        )

    def _utilization(self) -> None:
        """Each node's AU since the previous sample: compute time over counted time."""
        for node, progress in self.totals.training.items():
            delta = progress - self._sampled_training.get(node, UtilizationProgress())
            self._sampled_training[node] = progress
            if delta.counted_s > 0:
                self.au[node] = min(1.0, delta.compute_s / delta.counted_s)
            else:
                self.au.pop(node, None)

    def progress(self, phase: Phase, nodes: list[str], paused: bool = False) -> Progress:
        phase_totals = [s for (_, op), s in self.totals.totals.items() if op == phase]
        node_gbps = {node: self.rates.get((node, phase), 0.0) / 1e9 for node in nodes}
        concurrency = self.totals.concurrency()
        return Progress(
            phase,
            sum(s.ops for s in phase_totals),
            sum(s.errors for s in phase_totals),
            sum(node_gbps.values()),
            sum(limit for limit, _ in concurrency.values()),
            sum(in_flight for _, in_flight in concurrency.values()),
            node_gbps,
            sum(self.au.values()) / len(self.au) if phase == Phase.TRAIN and self.au else None,
            max((p.epoch for p in self.totals.training.values()), default=None)
            if phase == Phase.TRAIN
            else None,
            paused,
            self._live_limit(),
        )

    def _live_limit(self) -> str | None:
        """The running phase's limit for the progress line: none until a rule holds."""
        verdict = self.verdict
        if verdict is None or verdict.cluster.kind == Limit.UNCLEAR:
            return None
        return str(verdict.cluster.kind)


def resource_columns(second: NodeSecond | None) -> dict[str, Any]:
    """A node's interval as the time series' resource columns (empty: none measured)."""
    if second is None:
        return {}
    nic = second.busiest_nic
    return {
        "cpu": second.actors_cpu,
        "capacity_cores": second.capacity_cores,
        "node_cpu": second.node_cpu,
        "loop_lag_ms": None if second.loop_lag_s is None else second.loop_lag_s * 1000,
        "ttfb_p50_ms": None if second.ttfb_p50_s is None else second.ttfb_p50_s * 1000,
        "throttles": second.throttles,
        "nic": nic.name if nic else None,
        "nic_gbps": max(nic.rx_bps, nic.tx_bps) / 1e9 if nic else None,
        "nic_utilization": nic.utilization if nic else None,
    }
