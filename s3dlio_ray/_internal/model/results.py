"""The run model: one typed record of what a run measured, that every report, the metrics and the
API read, and the one place that knows the result file's shape.

It sits on the ground floor (it imports only `stats` and the vocabulary), so the engine, both
executors, the reports and `compare` share it without importing each other. Records are
frozen: an executor builds them once a phase is done. `RunResult.to_json()` / `from_json()`
round-trip exactly; `from_json` also reads schema versions 1 (no latency histograms below the
phase) to 4 (no `events`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from functools import cached_property
from importlib import resources
from typing import Any

from s3dlio_ray._internal.model.bottleneck import PhaseBottleneck
from s3dlio_ray._internal.model.open_loop import OpenLoopStats
from s3dlio_ray._internal.model.resources import ClientCost
from s3dlio_ray._internal.model.stats import LatencyHistogram, OpStats
from s3dlio_ray._internal.model.vocabulary import EndedBy, Phase

SCHEMA_VERSION = 10
READABLE_VERSIONS = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10)

MEANINGFUL_STEPS = 10
"""Counted steps per accelerator and epoch below which an AU is not a measurement."""


@dataclass(frozen=True)
class Percentiles:
    p50_s: float
    p90_s: float
    p99_s: float
    max_s: float
    mean_s: float

    @classmethod
    def of(cls, hist: LatencyHistogram) -> Percentiles:
        return cls(**hist.summary())


@dataclass(frozen=True)
class Summary:
    """Counts, rates over a wall time, and latency of one slice of a phase (an operation, a
    node, an actor, an endpoint). `histogram` is the merged latency histogram; None only in
    schema version 1 files."""

    objects: int
    bytes: int
    gbps: float
    ops_per_s: float
    latency: Percentiles
    ttfb: Percentiles | None
    errors: int
    retries: int
    histogram: LatencyHistogram | None = None

    @classmethod
    def of(cls, stats: OpStats, elapsed_s: float) -> Summary:
        return cls(
            objects=stats.ops,
            bytes=stats.bytes,
            gbps=stats.bytes / elapsed_s / 1e9 if elapsed_s > 0 else 0.0,
            ops_per_s=stats.ops / elapsed_s if elapsed_s > 0 else 0.0,
            latency=Percentiles.of(stats.latency),
            ttfb=Percentiles.of(stats.ttfb) if stats.ttfb.count else None,
            errors=stats.errors,
            retries=stats.retries,
            histogram=stats.latency,
        )

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "objects": self.objects,
            "bytes": self.bytes,
            "gbps": self.gbps,
            "ops_per_s": self.ops_per_s,
            "latency": asdict(self.latency),
            "ttfb": asdict(self.ttfb) if self.ttfb else None,
            "errors": self.errors,
            "retries": self.retries,
        }
        if self.histogram is not None:
            doc["latency_histogram"] = self.histogram.to_dict()
        return doc

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> Summary:
        hist = doc.get("latency_histogram")
        return cls(
            objects=doc["objects"],
            bytes=doc["bytes"],
            gbps=doc["gbps"],
            ops_per_s=doc["ops_per_s"],
            latency=Percentiles(**doc["latency"]),
            ttfb=Percentiles(**doc["ttfb"]) if doc["ttfb"] else None,
            errors=doc["errors"],
            retries=doc["retries"],
            histogram=LatencyHistogram.from_dict(hist) if hist else None,
        )


@dataclass(frozen=True)
class ConcurrencySample:
    """The controller's limit and the requests in flight at one moment of a share."""

    t_s: float
    limit: int
    in_flight: int
    bytes_per_s: float
    held_by: str | None = None
    """Why the controller held instead of climbing: `client-cpu` while the engine's own CPU
    was the limit (more requests would only queue)."""


@dataclass(frozen=True)
class AcceleratorEpoch:
    """One simulated accelerator's epoch of a train phase, measured as DLIO (MLPerf Storage)
    measures it: the first `exclude_start_steps` and last `exclude_end_steps` steps of an epoch
    are left out. `compute_s` is the compute time of the counted steps; `counted_s` the epoch's
    wall time less the load and compute time of the steps left out; `elapsed_s` the whole
    epoch. `counted_steps` is None in result files made before steps were left out this way.
    """

    rank: int
    epoch: int
    steps: int
    samples: int
    bytes: int
    wait_s: float
    compute_s: float
    counted_s: float
    elapsed_s: float
    node: str = ""
    counted_steps: int | None = None

    @property
    def au(self) -> float:
        """Accelerator utilization: the counted steps' compute time over the time counted; 0
        with no step counted, as DLIO scores it."""
        return self.compute_s / self.counted_s if self.compute_s > 0 and self.counted_s > 0 else 0.0

    @property
    def steps_counted(self) -> int:
        """The steps AU counts (a file made before steps were left out: all but the first)."""
        return self.counted_steps if self.counted_steps is not None else max(0, self.steps - 1)


@dataclass(frozen=True)
class EpochSummary:
    """One epoch across every accelerator of the cluster: its AU is the mean of theirs."""

    epoch: int
    samples: int
    bytes: int
    elapsed_s: float
    wait_s: float
    au: float
    passed: bool | None
    counted_steps: int = 0
    """The fewest steps any accelerator's AU counted in this epoch."""

    @property
    def samples_per_s(self) -> float:
        return self.samples / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def gbps(self) -> float:
        return self.bytes / self.elapsed_s / 1e9 if self.elapsed_s > 0 else 0.0


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _population_std(values: Sequence[float]) -> float:
    mean = _mean(values)
    return (sum((v - mean) ** 2 for v in values) / len(values)) ** 0.5 if values else 0.0


@dataclass(frozen=True, repr=False)
class TrainingResult:
    """A train phase: per accelerator and epoch, and the workload that shaped it.

    `dropped_per_epoch`: samples no step read, as DLIO drops them (steps per epoch are the
    samples over batch size times accelerators, rounded down).
    """

    epochs: tuple[AcceleratorEpoch, ...] = ()
    accelerators: int = 0
    batch_size: int = 0
    computation_time_s: float = 0.0
    steps_per_epoch: int = 0
    dropped_per_epoch: int = 0
    au_threshold: float | None = None
    memory_budget: int | None = None
    buffered_peak: int = 0
    """The most bytes any engine held at once for samples in flight and read ahead."""
    exclude_start_steps: int = 1
    exclude_end_steps: int = 0
    searching: bool = False
    """One try of a search for the most accelerators (a failed try is part of the answer)."""

    def __repr__(self) -> str:
        passed = "" if self.passed is None else f", passed={self.passed}"
        return (
            f"TrainingResult(au={self.au:.3f}, accelerators={self.accelerators}, "
            f"samples={self.samples}{passed})"
        )

    @property
    def au(self) -> float:
        """The run's AU as DLIO reports it: the mean over epochs of each epoch's AU (itself the
        mean over accelerators), not a time-weighted total."""
        return _mean([epoch.au for epoch in self.by_epoch()])

    @property
    def au_std(self) -> float:
        """The population standard deviation of the epochs' AU (DLIO's figure beside it)."""
        return _population_std([epoch.au for epoch in self.by_epoch()])

    @property
    def counted_steps(self) -> int:
        """The fewest steps any accelerator's AU counted in any epoch."""
        return min((e.steps_counted for e in self.epochs), default=0)

    @property
    def au_meaningful(self) -> bool:
        """Every accelerator counted at least MEANINGFUL_STEPS steps in every epoch."""
        return self.counted_steps >= MEANINGFUL_STEPS

    @property
    def passed(self) -> bool | None:
        """Whether AU met the threshold; None with no threshold, or with too few counted steps
        for the AU to mean anything."""
        if self.au_threshold is None or not self.au_meaningful:
            return None
        return self.au >= self.au_threshold

    @property
    def samples_per_s(self) -> tuple[float, float]:
        """Samples a second over the counted time, summed over accelerators, as the mean and
        population standard deviation over epochs (DLIO's throughput figures)."""
        rates = [epoch.samples_per_s for epoch in self.by_epoch()]
        return _mean(rates), _population_std(rates)

    @property
    def samples(self) -> int:
        return sum(e.samples for e in self.epochs)

    def _grouped(self, by: str) -> list[tuple[int, list[AcceleratorEpoch]]]:
        """The records grouped by `by` (epoch or rank) in one pass, in that order."""
        groups: dict[int, list[AcceleratorEpoch]] = {}
        for record in self.epochs:
            groups.setdefault(getattr(record, by), []).append(record)
        return sorted(groups.items())

    def by_epoch(self) -> list[EpochSummary]:
        summaries = []
        for number, parts in self._grouped("epoch"):
            au = _mean([e.au for e in parts])
            counted = min(e.steps_counted for e in parts)
            threshold = self.au_threshold
            summaries.append(
                EpochSummary(
                    number,
                    sum(e.samples for e in parts),
                    sum(e.bytes for e in parts),
                    max(e.elapsed_s for e in parts),
                    sum(e.wait_s for e in parts),
                    au,
                    None if threshold is None or counted < MEANINGFUL_STEPS else au >= threshold,
                    counted,
                )
            )
        return summaries

    def by_accelerator(self) -> list[AcceleratorEpoch]:
        """Each accelerator's epochs added up (epoch -1: all of them)."""
        totals = []
        for rank, parts in self._grouped("rank"):
            totals.append(
                AcceleratorEpoch(
                    rank,
                    -1,
                    sum(e.steps for e in parts),
                    sum(e.samples for e in parts),
                    sum(e.bytes for e in parts),
                    sum(e.wait_s for e in parts),
                    sum(e.compute_s for e in parts),
                    sum(e.counted_s for e in parts),
                    sum(e.elapsed_s for e in parts),
                    parts[0].node,
                    sum(e.steps_counted for e in parts),
                )
            )
        return totals

    def to_dict(self) -> dict[str, Any]:
        return {
            "accelerators": self.accelerators,
            "batch_size": self.batch_size,
            "computation_time_s": self.computation_time_s,
            "steps_per_epoch": self.steps_per_epoch,
            "dropped_per_epoch": self.dropped_per_epoch,
            "au_threshold": self.au_threshold,
            "memory_budget": self.memory_budget,
            "buffered_peak": self.buffered_peak,
            "au": self.au,
            "au_std": self.au_std,
            "au_meaningful": self.au_meaningful,
            "exclude_start_steps": self.exclude_start_steps,
            "exclude_end_steps": self.exclude_end_steps,
            "searching": self.searching,
            "samples_per_s": list(self.samples_per_s),
            "passed": self.passed,
            "by_epoch": [
                {**asdict(e), "samples_per_s": e.samples_per_s, "gbps": e.gbps}
                for e in self.by_epoch()
            ],
            "epochs": [{**asdict(e), "au": e.au} for e in self.epochs],
        }

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> TrainingResult:
        names = {f.name for f in fields(AcceleratorEpoch)}
        return cls(
            tuple(
                AcceleratorEpoch(**{k: v for k, v in e.items() if k in names})
                for e in doc["epochs"]
            ),
            doc["accelerators"],
            doc["batch_size"],
            doc["computation_time_s"],
            doc["steps_per_epoch"],
            doc["dropped_per_epoch"],
            doc["au_threshold"],
            doc["memory_budget"],
            doc["buffered_peak"],
            doc.get("exclude_start_steps", 1),
            doc.get("exclude_end_steps", 0),
            doc.get("searching", False),
        )


@dataclass(frozen=True)
class ReplayInfo:
    """What a replay replayed (schema 10): each log read (name, format, requests), the speed,
    the requests planned per operation and their bytes, what was left out and why, the
    requests scheduled in each second, the objects it touched (its own `replay-N` unless it
    read existing data) and made first, the deletes sent in parts, each node's clock less the
    driver's, how far ahead the start was set, and whether it read existing data."""

    sources: tuple[tuple[str, str, int], ...]
    speed: float
    planned: Mapping[str, int]
    planned_bytes: Mapping[str, int]
    skipped: Mapping[str, int]
    scheduled_per_s: tuple[int, ...]
    span_s: float
    objects: int
    created: int
    splits: int
    clock_offsets: Mapping[str, float]
    lead_s: float
    existing: bool = False

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["sources"] = [
            {"file": name, "format": fmt, "requests": n} for name, fmt, n in self.sources
        ]
        doc["scheduled_per_s"] = list(self.scheduled_per_s)
        return doc

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> ReplayInfo:
        fields_ = dict(doc)
        fields_["sources"] = tuple(
            (s["file"], s["format"], int(s["requests"])) for s in doc["sources"]
        )
        fields_["scheduled_per_s"] = tuple(doc["scheduled_per_s"])
        return cls(**fields_)


@dataclass(frozen=True)
class ShareResult:
    """What one engine did with its share of a phase: what the engine returns and an actor
    sends back, also when an error ended it (`fatal`), so nothing measured is lost.
    `dispatched`: operations started (a timed PUT's written keys follow from it)."""

    phase: Phase
    elapsed_s: float
    stats: OpStats
    ended_by: EndedBy = EndedBy.KEYS
    dispatched: int = 0
    failed: Mapping[str, str] = field(default_factory=dict)
    verified: int = 0
    verify_failures: int = 0
    samples: tuple[ConcurrencySample, ...] = ()
    start_concurrency: int = 0
    final_concurrency: int = 0
    peak_in_flight: int = 0
    by_op: Mapping[str, OpStats] = field(default_factory=dict)
    by_endpoint: Mapping[str, OpStats] = field(default_factory=dict)
    fatal: str | None = None
    """The error every further request would have hit too, which ended the share."""
    source_address: str | None = None
    """The local address the share's connections left from, when bind_addresses chose one."""
    checks: Mapping[str, int] = field(default_factory=dict)
    """Objects read back per check they passed: content, checksum-ALGORITHM, etag-md5, length."""
    listed: tuple[Sequence[str], Sequence[int]] | None = None
    """What a collecting LIST found: names, and their sizes in the same order."""
    training: tuple[AcceleratorEpoch, ...] = ()
    """A train phase's epochs, one per simulated accelerator of the share and epoch."""
    buffered_peak: int = 0
    """The most bytes the share held at once for reads in flight and read ahead."""
    digests: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    """What an upload stored: each name's size and CRC32 (the copy's manifest)."""
    throttles: int = 0
    """Retries the endpoint asked for by throttling (503 SlowDown, 5xx, timeouts)."""
    open_loop: OpenLoopStats | None = None
    """An open-loop share's lateness, service and response times (a replay, an arrival)."""
    missing: tuple[str, ...] = ()
    """Keys a replay of existing data read and the store did not have."""


@dataclass(frozen=True)
class ActorResult:
    """One actor's part of a phase, as the per-actor table and the result file show it."""

    actor: str
    node: str
    elapsed_s: float
    summary: Summary
    verified: int
    start_concurrency: int
    final_concurrency: int
    samples: tuple[ConcurrencySample, ...] = ()

    @classmethod
    def of(cls, actor: str, node: str, share: ShareResult) -> ActorResult:
        return cls(
            actor,
            node,
            share.elapsed_s,
            Summary.of(share.stats, share.elapsed_s),
            share.verified,
            share.start_concurrency,
            share.final_concurrency,
            share.samples,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "actor": self.actor,
            "node": self.node,
            "elapsed_s": self.elapsed_s,
            **self.summary.to_dict(),
            "verified": self.verified,
            "concurrency": {
                "start": self.start_concurrency,
                "final": self.final_concurrency,
                "samples": [asdict(s) for s in self.samples],
            },
        }

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> ActorResult:
        concurrency = doc["concurrency"]
        return cls(
            doc["actor"],
            doc["node"],
            doc["elapsed_s"],
            Summary.from_dict(doc),
            doc["verified"],
            concurrency["start"],
            concurrency["final"],
            tuple(ConcurrencySample(**s) for s in concurrency["samples"]),
        )


@dataclass(frozen=True, repr=False)
class PhaseResult:
    """One phase for the whole cluster: merged statistics, then per operation, endpoint, node
    and actor. Concurrency is summed over the engines; `peak_in_flight` is the sum of each
    engine's most requests in flight."""

    phase: Phase
    elapsed_s: float
    stats: OpStats
    ended_by: EndedBy = EndedBy.KEYS
    failed: Mapping[str, str] = field(default_factory=dict)
    verified: int = 0
    verify_failures: int = 0
    start_concurrency: int = 0
    final_concurrency: int = 0
    peak_in_flight: int = 0
    by_op: Mapping[str, Summary] = field(default_factory=dict)
    endpoints: Mapping[str, Summary] = field(default_factory=dict)
    nodes: Mapping[str, Summary] = field(default_factory=dict)
    actors: tuple[ActorResult, ...] = ()
    addresses: Mapping[str, Summary] = field(default_factory=dict)
    """Per "NODE ADDRESS": each source address's share of a node (with bind_addresses)."""
    checks: Mapping[str, int] = field(default_factory=dict)
    """Objects read back per check they passed (see ShareResult.checks)."""
    training: TrainingResult | None = None
    partial: bool = False
    """Actors were lost while the run stopped (their processes signalled with the command's):
    their figures are the last statistics they sent, each second, not their final ones."""
    bottleneck: PhaseBottleneck | None = None
    """What set the rate, per node and for the cluster, with its evidence (schema 9)."""
    client_cost: ClientCost | None = None
    """The actors' CPU per byte and per request (schema 9)."""
    open_loop: OpenLoopStats | None = None
    """Operations issued on a schedule (a replay, an arrival): lateness, service and response
    times, sent per second (schema 10)."""
    replay: ReplayInfo | None = None
    missing: tuple[str, ...] = ()
    """Keys a replay of existing data read that the store lacked (schema 10)."""

    @classmethod
    def merge(
        cls,
        phase: Phase,
        elapsed_s: float,
        shares: Sequence[tuple[str, str, ShareResult]],
        unassigned: Mapping[str, str] | None = None,
    ) -> PhaseResult:
        """The cluster's view of (actor, node, share) parts: counts and histograms add, the
        concurrency limits add up; it ended by what ended any share early (duration, autoterm,
        error), else by running out of keys. `unassigned`: keys no engine could take, failed."""
        stats, failed, ended_by = OpStats(), dict(unassigned or {}), EndedBy.KEYS
        by_op: dict[str, OpStats] = {}
        endpoints: dict[str, OpStats] = {}
        nodes: dict[str, OpStats] = {}
        addresses: dict[str, OpStats] = {}
        checks: dict[str, int] = {}
        training: list[AcceleratorEpoch] = []
        open_loop: OpenLoopStats | None = None
        for _, node, share in shares:
            if share.open_loop is not None:
                open_loop = open_loop or OpenLoopStats()
                open_loop.merge(share.open_loop)
            training += [replace(epoch, node=node) for epoch in share.training]
            for check, count in share.checks.items():
                checks[check] = checks.get(check, 0) + count
            stats.merge(share.stats)
            failed.update(share.failed)
            if ended_by == EndedBy.KEYS:
                ended_by = share.ended_by
            for op, op_stats in share.by_op.items():
                by_op.setdefault(op, OpStats()).merge(op_stats)
            for endpoint, endpoint_stats in share.by_endpoint.items():
                endpoints.setdefault(endpoint, OpStats()).merge(endpoint_stats)
            nodes.setdefault(node, OpStats()).merge(share.stats)
            if share.source_address:
                addresses.setdefault(f"{node} {share.source_address}", OpStats()).merge(share.stats)
        stats.errors += len(unassigned or {})
        return cls(
            phase=phase,
            elapsed_s=elapsed_s,
            stats=stats,
            ended_by=ended_by,
            failed=failed,
            verified=sum(s.verified for _, _, s in shares),
            verify_failures=sum(s.verify_failures for _, _, s in shares),
            start_concurrency=sum(s.start_concurrency for _, _, s in shares),
            final_concurrency=sum(s.final_concurrency for _, _, s in shares),
            peak_in_flight=sum(s.peak_in_flight for _, _, s in shares),
            by_op=_summaries(by_op, elapsed_s),
            endpoints=_summaries(endpoints, elapsed_s),
            nodes=_summaries(dict(sorted(nodes.items())), elapsed_s),
            actors=tuple(ActorResult.of(actor, node, share) for actor, node, share in shares),
            addresses=_summaries(dict(sorted(addresses.items())), elapsed_s),
            checks=dict(sorted(checks.items())),
            open_loop=open_loop,
            missing=tuple(sorted({key for _, _, s in shares for key in s.missing})),
            training=TrainingResult(
                tuple(training), buffered_peak=max(s.buffered_peak for _, _, s in shares)
            )
            if training
            else None,
        )

    def __repr__(self) -> str:
        training = "" if self.training is None else f", {self.training!r}"
        return (
            f"PhaseResult({self.phase}, {self.objects} objects, {self.gbps:.3f} GB/s, "
            f"{self.elapsed_s:.1f} s, ended_by={self.ended_by}, errors={self.errors}{training})"
        )

    @cached_property
    def summary(self) -> Summary:
        return Summary.of(self.stats, self.elapsed_s)

    @property
    def gbps(self) -> float:
        return self.summary.gbps

    @property
    def ops_per_s(self) -> float:
        return self.summary.ops_per_s

    @property
    def objects(self) -> int:
        return self.stats.ops

    @property
    def errors(self) -> int:
        return self.stats.errors

    @property
    def latency(self) -> Percentiles:
        return self.summary.latency

    def actors_on(self, node: str) -> int:
        return sum(1 for a in self.actors if a.node == node)

    def to_dict(self) -> dict[str, Any]:
        summary = self.summary.to_dict()
        summary.pop("latency_histogram")
        return {
            "phase": str(self.phase),
            "elapsed_s": self.elapsed_s,
            "ended_by": str(self.ended_by),
            **summary,
            "verified": self.verified,
            "verify_failures": self.verify_failures,
            "concurrency": {
                "start": self.start_concurrency,
                "final": self.final_concurrency,
                "peak_in_flight": self.peak_in_flight,
            },
            "failed": dict(self.failed),
            "by_op": {op: s.to_dict() for op, s in self.by_op.items()},
            "endpoints": {e: s.to_dict() for e, s in self.endpoints.items()},
            "nodes": {node: s.to_dict() for node, s in self.nodes.items()},
            "addresses": {a: s.to_dict() for a, s in self.addresses.items()},
            "checks": dict(self.checks),
            "training": self.training.to_dict() if self.training else None,
            "actors": [a.to_dict() for a in self.actors],
            "stats": self.stats.to_dict(),
            "partial": self.partial,
            "bottleneck": self.bottleneck.to_dict() if self.bottleneck else None,
            "client_cost": self.client_cost.to_dict() if self.client_cost else None,
            "open_loop": self.open_loop.to_dict() if self.open_loop else None,
            "replay": self.replay.to_dict() if self.replay else None,
            "missing": list(self.missing),
        }

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> PhaseResult:
        concurrency = doc["concurrency"]
        return cls(
            phase=Phase(doc["phase"]),
            elapsed_s=doc["elapsed_s"],
            stats=OpStats.from_dict(doc["stats"]),
            ended_by=EndedBy(doc.get("ended_by", EndedBy.KEYS)),
            failed=dict(doc["failed"]),
            verified=doc["verified"],
            verify_failures=doc["verify_failures"],
            start_concurrency=concurrency["start"],
            final_concurrency=concurrency["final"],
            peak_in_flight=concurrency["peak_in_flight"],
            by_op={op: Summary.from_dict(s) for op, s in doc["by_op"].items()},
            endpoints={e: Summary.from_dict(s) for e, s in doc.get("endpoints", {}).items()},
            nodes={node: Summary.from_dict(s) for node, s in doc["nodes"].items()},
            actors=tuple(ActorResult.from_dict(a) for a in doc["actors"]),
            addresses={a: Summary.from_dict(s) for a, s in doc.get("addresses", {}).items()},
            checks=dict(doc.get("checks", {})),
            training=TrainingResult.from_dict(doc["training"]) if doc.get("training") else None,
            partial=doc.get("partial", False),
            bottleneck=PhaseBottleneck.from_dict(doc["bottleneck"])
            if doc.get("bottleneck")
            else None,
            client_cost=ClientCost.from_dict(doc["client_cost"])
            if doc.get("client_cost")
            else None,
            open_loop=OpenLoopStats.from_dict(doc["open_loop"]) if doc.get("open_loop") else None,
            replay=ReplayInfo.from_dict(doc["replay"]) if doc.get("replay") else None,
            missing=tuple(doc.get("missing", ())),
        )


def _summaries(stats: Mapping[str, OpStats], elapsed_s: float) -> dict[str, Summary]:
    return {name: Summary.of(s, elapsed_s) for name, s in stats.items()}


@dataclass(frozen=True)
class SeriesRow:
    """One interval (a tick, about a second) of one node's work on one operation: a row of the
    CSV time series. `t_s` is the interval's end; `gbps` is its bytes over `interval_s`. A mixed
    phase has a row per node for the phase (`op` == `phase`) and one per operation within it."""

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
    au: float | None = None
    """A train phase: the node's accelerator utilization over this second."""
    event: str | None = None
    """The settings changed during this second (`s3dlio-ray control`), as `key=value, ...`."""
    phase: str = ""
    """The phase the row belongs to (schema 7; before it, the row's `op`)."""
    interval_s: float | None = None
    """The seconds the row covers (schema 7; unknown before it)."""
    epoch: int | None = None
    """A train phase: the latest epoch any accelerator of the node was in."""
    cpu: float | None = None
    """Cores the node's actors used (schema 9, as the columns below)."""
    capacity_cores: float | None = None
    """Cores the actors may use: their CPUs, less a cgroup quota."""
    node_cpu: float | None = None
    """The share of the node's CPU busy, every process on it counted."""
    loop_lag_ms: float | None = None
    """How late the actors' event loops woke, on average."""
    ttfb_p50_ms: float | None = None
    throttles: int | None = None
    """Requests the endpoint throttled (503 SlowDown, 5xx, timeouts), retried."""
    nic: str | None = None
    """The node's busiest NIC of those the actors' connections use."""
    nic_gbps: float | None = None
    """Its busier direction, Gbit/s."""
    nic_utilization: float | None = None
    """Its busier direction's share of its speed (None: speed unknown; see nic_gbps)."""

    def __post_init__(self) -> None:
        if not self.phase:
            object.__setattr__(self, "phase", self.op)


@dataclass(frozen=True)
class ConfigEvent:
    """Settings changed while the run went (`s3dlio-ray control`), on the time series' clock."""

    time: float
    t_s: float
    changes: Mapping[str, Any]

    def describe(self) -> str:
        return describe_changes(self.changes)


def describe_changes(changes: Mapping[str, Any]) -> str:
    """`key=value, ...` as the CSV, the report and `s3dlio-ray control` print changes."""
    return ", ".join(f"{key}={_setting(value)}" for key, value in changes.items())


def _setting(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "none" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


SERIES_COLUMNS = tuple(f.name for f in fields(SeriesRow))


@dataclass(frozen=True)
class CleanupResult:
    deleted: int = 0
    failed: tuple[str, ...] = ()
    aborted_uploads: int = 0
    bucket_removed: bool = False
    elapsed_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "failed": list(self.failed)}


@dataclass(frozen=True)
class Environment:
    """Where the run ran; never credentials."""

    python: str
    platform: str
    host: str
    cpus: int | None
    versions: Mapping[str, str | None]


@dataclass(frozen=True)
class ClusterInfo:
    """What ran the phases: the executor, its nodes and actors, and the driver's gathering."""

    executor: str
    nodes: tuple[str, ...]
    actors: int
    node_cpus: Mapping[str, float]
    driver_gather_cpu_s: float = 0.0
    gathers: int = 0


@dataclass(frozen=True, repr=False)
class RunResult:
    """One run (or one configuration of a run), from start to cleanup.

    `settings` is the run's settings as plain data (Settings never holds a secret).
    """

    run_id: str
    workload: str
    seed: int
    endpoint: str
    bucket: str
    bucket_created: bool
    profile: str
    http_version: str
    settings: Mapping[str, Any]
    environment: Environment
    cluster: ClusterInfo
    phases: tuple[PhaseResult, ...] = ()
    timeseries: tuple[SeriesRow, ...] = ()
    cleanup: CleanupResult | None = None
    error: str | None = None
    configuration: str | None = None
    tool_version: str = ""
    endpoints: tuple[str, ...] = ()
    """Every endpoint the run spread its requests over (`endpoint` is the first)."""
    events: tuple[ConfigEvent, ...] = ()

    def __repr__(self) -> str:
        phases = ", ".join(repr(phase) for phase in self.phases)
        named = "" if self.configuration is None else f", configuration={self.configuration!r}"
        return (
            f"RunResult({self.workload!r}, run_id={self.run_id!r}{named}, ok={self.ok}, "
            f"phases=[{phases}])"
        )

    @property
    def passed(self) -> bool | None:
        """Whether the run met the criteria it was given (an AU threshold): None with none
        judged; a search for the most accelerators passes once one count held."""
        trained = [p.training for p in self.phases if p.training is not None]
        verdicts = [t.passed for t in trained if not t.searching and t.passed is not None]
        searched = [t.passed for t in trained if t.searching and t.passed is not None]
        if searched:
            verdicts.append(any(searched))
        return all(verdicts) if verdicts else None

    @property
    def ok(self) -> bool:
        """Every object written and read back intact, cleanup complete, no run error."""
        failures = sum(len(p.failed) for p in self.phases)
        cleanup_failed = bool(self.cleanup and self.cleanup.failed)
        return self.error is None and failures == 0 and not cleanup_failed

    def phase(self, phase: Phase | str) -> PhaseResult | None:
        return next((p for p in self.phases if p.phase == phase), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "tool": {"name": "s3dlio-ray", "version": self.tool_version},
            "run_id": self.run_id,
            "ok": self.ok,
            "passed": self.passed,
            "error": self.error,
            "workload": self.workload,
            "configuration": self.configuration,
            "seed": self.seed,
            "endpoint": self.endpoint,
            "endpoints": list(self.endpoints or (self.endpoint,)),
            "bucket": self.bucket,
            "bucket_created": self.bucket_created,
            "profile": self.profile,
            "http_version": self.http_version,
            "settings": dict(self.settings),
            "environment": {
                **asdict(self.environment),
                "versions": dict(self.environment.versions),
            },
            "cluster": {
                **asdict(self.cluster),
                "nodes": list(self.cluster.nodes),
                "node_cpus": dict(self.cluster.node_cpus),
            },
            "phases": [p.to_dict() for p in self.phases],
            "timeseries": [asdict(row) for row in self.timeseries],
            "events": [{**asdict(event), "changes": dict(event.changes)} for event in self.events],
            "cleanup": self.cleanup.to_dict() if self.cleanup else None,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> RunResult:
        """A result document of schema version 1 to 6 (KeyError or ValueError when it is not)."""
        if doc["schema_version"] not in READABLE_VERSIONS:
            raise ValueError(f"schema version {doc['schema_version']} is not readable")
        cleanup = doc["cleanup"]
        cluster = doc["cluster"]
        return cls(
            run_id=doc["run_id"],
            workload=doc["workload"],
            seed=doc["seed"],
            endpoint=doc["endpoint"],
            endpoints=tuple(doc.get("endpoints", [doc["endpoint"]])),
            bucket=doc["bucket"],
            bucket_created=doc["bucket_created"],
            profile=doc["profile"],
            http_version=doc["http_version"],
            settings=doc["settings"],
            environment=Environment(**doc["environment"]),
            cluster=ClusterInfo(**{**cluster, "nodes": tuple(cluster["nodes"])}),
            phases=tuple(PhaseResult.from_dict(p) for p in doc["phases"]),
            timeseries=tuple(SeriesRow(**row) for row in doc["timeseries"]),
            events=tuple(ConfigEvent(**event) for event in doc.get("events", ())),
            cleanup=CleanupResult(**{**cleanup, "failed": tuple(cleanup["failed"])})
            if cleanup
            else None,
            error=doc["error"],
            configuration=doc.get("configuration"),
            tool_version=doc["tool"]["version"],
        )

    @classmethod
    def from_json(cls, text: str) -> RunResult:
        return cls.from_dict(json.loads(text))


def result_schema(version: int = SCHEMA_VERSION) -> dict[str, Any]:
    """The JSON Schema the result files follow (shipped with the package)."""
    text = resources.files("s3dlio_ray").joinpath(f"schemas/result-v{version}.schema.json")
    return json.loads(text.read_text())
