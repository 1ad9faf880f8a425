"""Runs a transfer phase over a pool of workers: shards the keys, watches every share each second,
stops them all on autoterm, and gives a lost worker's whole share to the others.

The same code drives Ray actors across a cluster and one engine in this process: a worker is
anything that runs a share (`Worker`), and a pool gathers their snapshots (a Ray pool one call
per node) and says which exceptions mean a worker is gone. A lost worker's partial work stays in
the live totals but not in the result, so nothing is counted twice; a key no worker could take is
listed as failed. With the cluster controller, each snapshot request also carries the actor's
ceiling and pace from the previous second's readings; after a change of settings while the run
goes (changes.py), each carries the run's latest changes too, and a paused run's time counts
toward neither a phase's duration, its elapsed time nor the autoterm window.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from s3dlio_ray._internal.execution.admission import ActiveClock, ShareLimits
from s3dlio_ray._internal.execution.engine import EngineSnapshot
from s3dlio_ray._internal.execution.phases.step import PhaseOutcome
from s3dlio_ray._internal.execution.phases.transfer import PhaseSpec
from s3dlio_ray._internal.live.pool import Worker, WorkerPool
from s3dlio_ray._internal.live.steering import ClusterSteering
from s3dlio_ray._internal.live.telemetry import Progress, Telemetry
from s3dlio_ray._internal.model.bottleneck import Cap, judge
from s3dlio_ray._internal.model.errors import S3DlioRayError
from s3dlio_ray._internal.model.keys import KeyBounds, KeyRange, ListedKeys, as_key_range
from s3dlio_ray._internal.model.resources import ClientCost
from s3dlio_ray._internal.model.results import PhaseResult, ShareResult
from s3dlio_ray._internal.model.sharding import shard
from s3dlio_ray._internal.model.utilization import UtilizationProgress
from s3dlio_ray._internal.model.vocabulary import EndedBy, Limit, Phase
from s3dlio_ray._internal.settings.changes import UNCHANGED, Overrides
from s3dlio_ray._internal.tuning.autoterm import SteadyDetector
from s3dlio_ray._internal.tuning.cluster import (
    ClusterController,
    ClusterPolicy,
)

SLOW_GATHERS = 3
"""Gathers longer than the tick, in one run, before the driver says so."""

log = logging.getLogger(__name__)


def phase_control(
    spec: PhaseSpec, engines: int, elapsed_s: float = 0.0, overrides: Overrides = UNCHANGED
) -> ShareLimits:
    """One of `engines` engines' share of the rate cap (changed or not), and of the duration
    what is left after `elapsed_s` (a share reassigned from a lost worker starts late)."""
    limit = overrides.rate_limit(spec.rate_limit)
    rate = limit.share(engines) if limit else None
    arrival = spec.arrival.share(engines) if spec.arrival else None
    duration = max(0.1, spec.duration_s - elapsed_s) if spec.duration_s else None
    return ShareLimits(duration, rate, overrides, arrival=arrival)


def successful_writes(share: KeyRange, result: ShareResult) -> KeyRange:
    """The keys a PUT of `share` stored: those it started, less those that failed."""
    return share.written(result.dispatched).without(result.failed)


@dataclass
class _Task:
    task_id: int
    worker: Worker
    keys: Sequence[str]
    future: asyncio.Future[ShareResult] = field(repr=False)


ProgressHook = Callable[[Progress], None]


class PhaseExecutor:
    """Runs the transfer phases of a run on a pool's workers, keeping the live telemetry."""

    def __init__(
        self,
        pool: WorkerPool,
        tick_s: float = 1.0,
        cluster_policy: Callable[[Phase, Overrides], ClusterPolicy | None] = lambda phase, o: None,
    ) -> None:
        self.pool = pool
        self._tick_s = tick_s
        self._cluster_policy = cluster_policy
        self._alive = {worker.name: True for worker in pool.workers}
        self._task_ids = itertools.count()
        self.telemetry = Telemetry()
        self.on_progress: ProgressHook | None = None
        self.gather_cpu_s = 0.0
        self.gather_wall_s: list[float] = []
        """Each tick's gather, from asking the first share to the sample taken."""
        self._said_slow = False
        self._missed_ticks = 0
        self._interrupted = asyncio.Event()
        self._running: list[_Task] = []
        self._stopped_by: EndedBy | None = None
        self._fatal: str | None = None
        self.skip_cleanup = False
        self.overrides = Overrides()
        """The run's changes so far: shares start with them, running ones get them each tick."""
        self._clock = ActiveClock()
        """The run's time less its paused time: what phases' elapsed time and autoterm count."""
        self.written = KeyBounds(rounds=0, mixed=(0, 0), replays=0)
        """The later rounds and mixed keys the run's shares stored (KeyBounds.rounds, .mixed);
        unbounded once a share was lost or broke (what it stored is not known)."""

    @property
    def engines(self) -> int:
        return len(self._live())

    @property
    def nodes(self) -> list[str]:
        return sorted({w.node for w in self.pool.workers})

    def actors_per_node(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for worker in self.pool.workers:
            counts[worker.node] = counts.get(worker.node, 0) + 1
        return counts

    def interrupt(self, skip_cleanup: bool = False) -> None:
        """Stop the running phase's shares (what is in flight finishes and counts) and mark the
        run interrupted, so no further transfer phase starts; with `skip_cleanup`, no cleanup
        either."""
        self._interrupted.set()
        self.skip_cleanup = self.skip_cleanup or skip_cleanup
        self._stop_all(EndedBy.INTERRUPTED)

    @property
    def interrupted(self) -> bool:
        return self._interrupted.is_set()

    def adjust(self, overrides: Overrides, changes: Mapping[str, Any]) -> None:
        """Take a change of settings (checked by Overrides.change) and mark it on the series;
        every running engine gets it with its next statistics request."""
        self.overrides = overrides
        self._clock.pause(overrides.paused)
        self.telemetry.mark(changes)

    async def clock_offsets(self, samples: int = 5) -> dict[str, float]:
        """Each node's wall clock less the driver's: of `samples` round trips to a worker on
        it, the one answered soonest, its reading taken as made halfway."""
        offsets = {}
        for node in self.nodes:
            worker = next(w for w in self._live() if w.node == node)
            best: tuple[float, float] | None = None
            for _ in range(samples):
                sent = time.time()
                remote = await worker.clock()
                back = time.time()
                if best is None or back - sent < best[0]:
                    best = (back - sent, remote - (sent + back) / 2)
            offsets[node] = best[1] if best else 0.0
        return offsets

    async def pause(self, seconds: float) -> None:
        """Sleep between phases, ending early when the run is interrupted."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._interrupted.wait(), seconds)

    def _live(self) -> list[Worker]:
        return [w for w in self.pool.workers if self._alive[w.name]]

    def _spread(
        self, spec: PhaseSpec, keys: Sequence[str], elapsed_s: float, node: str | None = None
    ) -> list[_Task]:
        """Shard `keys` over the live workers (of `node` only, when given) and start a share on
        each; a per-node phase gives every node all of them."""
        live = [w for w in self._live() if node is None or w.node == node]
        if spec.per_node and node is None:
            return [
                t
                for n in sorted({w.node for w in live})
                for t in self._spread(spec, keys, elapsed_s, n)
            ]
        control = phase_control(spec, len(self._live()), elapsed_s, self.overrides)
        tasks = []
        for worker, share in zip(live, shard(keys, len(live)), strict=True):
            if share:
                task_id = next(self._task_ids)
                on_node = spec.for_node(worker.node)
                future = asyncio.ensure_future(worker.run_share(task_id, on_node, share, control))
                tasks.append(_Task(task_id, worker, share, future))
        return tasks

    async def run_phase(self, spec: PhaseSpec, keys: Sequence[str]) -> PhaseOutcome:
        """Run the phase over all `keys`. An error every request would hit, in any share, stops
        every share (what they did is kept) and is the outcome's `fatal`; a share that failed
        otherwise stops the others too, and its exception is raised once they have stopped."""
        phase = spec.phase
        if not self._live():
            raise S3DlioRayError(f"{phase}: no transfer actor is left alive in the cluster")
        # A replay's phase begins at its schedule's start, set ahead of handing out its shares.
        lead = max(0.0, spec.replay.start_unix - time.time()) if spec.replay else 0.0
        started = self._clock() + lead
        self._note_replay(spec)
        self.telemetry.begin(phase, self._caps(spec))
        self._fatal = None
        self._stopped_by = EndedBy.INTERRUPTED if self.interrupted else None
        tasks = self._running = self._spread(spec, keys, 0.0)
        written: list[KeyRange] = []
        listed: list[tuple[Sequence[str], Sequence[int]]] = []
        digests: dict[str, tuple[int, int]] = {}
        parts: list[tuple[str, str, ShareResult]] = []
        unassigned: dict[str, str] = {}
        partial = False
        broken: BaseException | None = None
        watcher = asyncio.ensure_future(self._watch(spec, tasks))
        try:
            while tasks:
                await asyncio.wait([t.future for t in tasks], return_when=asyncio.FIRST_COMPLETED)
                for task in [t for t in tasks if t.future.done()]:
                    tasks.remove(task)
                    try:
                        result = task.future.result()
                    except self.pool.lost as exc:
                        self.written = KeyBounds()
                        elapsed = self._clock() - started
                        if self.interrupted:
                            parts.append(self._given_up(task, phase, elapsed))
                            partial = True
                            continue
                        tasks += self._reassign(task, spec, elapsed, exc, unassigned)
                        self._stop_again()
                        continue
                    except S3DlioRayError as exc:
                        self.written = KeyBounds()
                        self._fail(str(exc))
                        continue
                    except Exception as exc:
                        self.written = KeyBounds()
                        broken = broken or exc
                        self._stop_all(EndedBy.ERROR)
                        continue
                    worker = task.worker
                    self.telemetry.totals.finish(
                        task.task_id,
                        worker.node,
                        phase,
                        result.stats,
                        result.by_endpoint,
                        UtilizationProgress.of(result.training) if result.training else None,
                        result.by_op,
                        (result.final_concurrency, result.peak_in_flight),
                        result.throttles,
                    )
                    if phase == Phase.PUT and isinstance(task.keys, KeyRange):
                        written.append(successful_writes(as_key_range(task.keys), result))
                    self._note_written(phase, task.task_id, result, written)
                    if result.listed is not None:
                        listed.append(result.listed)
                    digests.update(result.digests)
                    parts.append((worker.name, worker.node, result))
                    if result.fatal:
                        self._fail(result.fatal)
        finally:
            watcher.cancel()
            for task in tasks:
                task.future.cancel()
            self._running = []
        if broken is not None:
            raise broken
        self.telemetry.sample(phase, final=True)
        elapsed = self._clock() - started
        merged = PhaseResult.merge(phase, elapsed, parts, unassigned)
        seconds = self.telemetry.seconds
        ticks = [sample.held_by for actor in merged.actors for sample in actor.samples]
        held = ticks.count("client-cpu") / len(ticks) if ticks else None
        merged = dataclasses.replace(
            merged,
            bottleneck=judge(
                seconds,
                [cap.reached(merged.gbps * 1e9, merged.ops_per_s) for cap in self._caps(spec)],
                held,
            ),
            client_cost=ClientCost.of(seconds, self.telemetry.totals.resources.floors),
        )
        self.telemetry.verdict = merged.bottleneck
        if self._fatal is not None:
            merged = dataclasses.replace(merged, ended_by=EndedBy.ERROR)
        if partial:
            merged = dataclasses.replace(merged, partial=True)
        # A PUT of the run's key range hands it on; one of listed keys (what a replay makes
        # first) has nothing to hand on.
        ranged = phase == Phase.PUT and isinstance(keys, KeyRange)
        stored = KeyRange.joined(as_key_range(keys).prefix, written) if ranged else None
        found = ListedKeys.joined(listed) if spec.collect else None
        return PhaseOutcome(merged, stored, self._fatal, found, digests)

    def _caps(self, spec: PhaseSpec) -> list[Cap]:
        """The tool's own caps on the phase: its target, its rate limit as changed so far."""
        caps = []
        if spec.target_bytes_per_s:
            caps.append(Cap(Limit.TARGET, spec.target_bytes_per_s))
        limit = self.overrides.rate_limit(spec.rate_limit)
        if limit is not None:
            unit = "ops/s" if limit.unit == "ops" else "B/s"
            caps.append(Cap(Limit.RATE_LIMIT, limit.per_s, unit=unit))
        return caps

    @property
    def gathers(self) -> int:
        return len(self.gather_wall_s)

    def _took(self, seconds: float, workers: int) -> None:
        """Keep a gather's wall time; say once when gathers keep taking longer than the tick
        (the series then has fewer, longer rows). One slow gather, as a busy moment makes, is
        not worth a line."""
        self.gather_wall_s.append(seconds)
        self._missed_ticks += seconds > self._tick_s
        missed = self._missed_ticks
        if missed >= SLOW_GATHERS and not self._said_slow:
            self._said_slow = True
            log.warning(
                "gathering %d actors' statistics took longer than the %.0f ms tick %d times "
                "(latest %.0f ms): the time series has fewer, longer rows (fewer actors per "
                "node would help)",
                workers,
                self._tick_s * 1000,
                missed,
                seconds * 1000,
            )

    def _fail(self, message: str) -> None:
        """The phase's first fatal error: every other share stops too."""
        if self._fatal is None:
            self._fatal = message
            self._stop_all(EndedBy.ERROR)

    def _stop_all(self, reason: EndedBy) -> None:
        self._stopped_by = self._stopped_by or reason
        for task in self._running:
            task.worker.stop(task.task_id, reason)

    def _stop_again(self) -> None:
        """Shares started after a stop (a lost worker's, reassigned) stop as well."""
        if self._stopped_by is not None:
            self._stop_all(self._stopped_by)

    def _note_written(
        self, phase: Phase, task_id: int, result: ShareResult, written: list[KeyRange]
    ) -> None:
        """Widen `written` by a finished share: a PUT's later rounds, a mixed share's new keys
        (`mixed-TASK-N`, N below the operations it started)."""
        if self.written.rounds is None or self.written.mixed is None:
            return
        rounds, (tasks, count) = self.written.rounds, self.written.mixed
        if phase == Phase.PUT and written:
            rounds = max([rounds, *(span.round_ for span in written[-1].spans)])
        if phase == Phase.MIXED:
            tasks, count = max(tasks, task_id + 1), max(count, result.dispatched)
        self.written = dataclasses.replace(self.written, rounds=rounds, mixed=(tasks, count))

    def _note_replay(self, spec: PhaseSpec) -> None:
        """A replay may write the run's `replay-N` names below those it planned."""
        if spec.replay is not None and self.written.replays is not None:
            replays = max(self.written.replays, spec.replay.names)
            self.written = dataclasses.replace(self.written, replays=replays)

    def _given_up(
        self, task: _Task, phase: Phase, elapsed_s: float
    ) -> tuple[str, str, ShareResult]:
        """A worker lost while the run stops (its processes signalled with the driver's): its
        share is not given to another, and what its last snapshot showed is its part."""
        self._alive[task.worker.name] = False
        seen = self.telemetry.totals.abandon(task.task_id)
        share = ShareResult(
            phase,
            elapsed_s,
            seen.stats,
            EndedBy.INTERRUPTED,
            by_op=seen.by_op,
            by_endpoint=seen.by_endpoint,
        )
        return task.worker.name, task.worker.node, share

    def _reassign(
        self,
        task: _Task,
        spec: PhaseSpec,
        elapsed_s: float,
        exc: BaseException,
        unassigned: dict[str, str],
    ) -> list[_Task]:
        self._alive[task.worker.name] = False
        self.telemetry.totals.abandon(task.task_id)
        node = task.worker.node if spec.per_node else None
        live = len([w for w in self._live() if node is None or w.node == node])
        log.warning(
            "actor %s died during %s (%s); giving its %d keys to %d other actors",
            task.worker.name,
            spec.phase,
            type(exc).__name__,
            len(task.keys),
            live,
        )
        if not live:
            reason = f"actor {task.worker.name} died and no live actor was left to take the key"
            if node is not None:
                reason += f" on node {node}"
            unassigned.update(dict.fromkeys(task.keys, reason))
            return []
        return self._spread(spec, task.keys, elapsed_s, node)

    async def _watch(self, spec: PhaseSpec, tasks: list[_Task]) -> None:
        """Every tick: gather snapshots from the running shares, then take a sample; with
        autoterm, stop every running share once the cluster's throughput is steady."""
        phase = spec.phase
        detector = (
            SteadyDetector(spec.autoterm_window_s, spec.autoterm_pct)
            if spec.autoterm_window_s
            else None
        )
        policy = self._cluster_policy(phase, self.overrides)
        steering = None if policy is None else ClusterSteering(ClusterController(policy))
        last = due = time.perf_counter()
        started = self._clock()
        while True:
            due += self._tick_s
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            began, cpu0 = time.perf_counter(), time.process_time()
            running = list({t.worker.name: t for t in tasks}.values())
            adjust = None
            if self.overrides.version:
                adjust = phase_control(spec, len(self._live()), 0.0, self.overrides)
                policy = self._cluster_policy(phase, self.overrides)
                if steering is not None and policy is not None:
                    steering.controller.policy = policy
            replies = await self.pool.snapshots(
                [(t.worker, steering.of(t.task_id) if steering else None) for t in running],
                adjust,
            )
            snapshots: dict[int, EngineSnapshot] = {}
            for task, reply in zip(running, replies, strict=True):
                if isinstance(reply, BaseException):
                    continue
                task_id, snapshot = reply
                self.telemetry.totals.observe(task_id, task.worker.node, snapshot)
                if snapshot is not None and snapshot.fatal:
                    self._fail(snapshot.fatal)
                if snapshot is not None and task_id == task.task_id and snapshot.phase == phase:
                    snapshots[task_id] = snapshot
            now = time.perf_counter()
            if steering is not None:
                steering.observe(snapshots, now - last)
            last = now
            rate = self.telemetry.sample(phase)
            counts = rate is not None and not self._clock.paused
            if (
                counts
                and detector is not None
                and detector.add(self._clock() - started, rate or 0.0)
            ):
                detector = None
                self._stop_all(EndedBy.AUTOTERM)
            self.gather_cpu_s += time.process_time() - cpu0
            self._took(time.perf_counter() - began, len(running))
            due = max(due, time.perf_counter() - self._tick_s)
            if self.on_progress is not None:
                self.on_progress(self.telemetry.progress(phase, self.nodes, self._clock.paused))
