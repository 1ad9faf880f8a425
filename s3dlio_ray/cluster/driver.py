"""The driver: places transfer actors on every node, runs phases across them, watches them live.

A phase is sharded over all actors; every second the driver gathers each actor's running
statistics (small snapshots, answered between transfers on the actor's event loop) into per-node
totals for the progress line and the metrics. When an actor dies, its whole share goes to the
actors still alive: its partial work is not counted in the result, so nothing is counted twice,
and a key that no actor could take is listed as failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import itertools
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import ray
from ray.exceptions import RayActorError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from s3dlio_ray.cluster.actor import TransferActor
from s3dlio_ray.cluster.aggregate import ActorPhaseResult, LiveTotals, SeriesRow, merge_phase
from s3dlio_ray.cluster.sharding import shard
from s3dlio_ray.config import Settings
from s3dlio_ray.engine import PhaseResult
from s3dlio_ray.errors import S3DlioRayError
from s3dlio_ray.runner import PhaseSpec, phase_control, successful_writes
from s3dlio_ray.s3.signing import StaticCredentials, resolve_credentials
from s3dlio_ray.stats import OpStats
from s3dlio_ray.tuning.autoterm import SteadyDetector, steadiness_rate

log = logging.getLogger(__name__)

ACTOR_LOST = (RayActorError, ray.exceptions.ActorUnavailableError)


@dataclass(frozen=True)
class NodeSlot:
    """Where actors go: one Ray node, how many actors, and the CPUs each reserves."""

    node_id: str
    label: str
    cpus: float
    actors: int
    cpus_each: float


def node_labels(nodes: Sequence[dict]) -> dict[str, str]:
    """A readable, unique label per node: its IP, or IP and short node id when IPs repeat."""
    ips = [n["NodeManagerAddress"] for n in nodes]
    return {
        n["NodeID"]: n["NodeManagerAddress"]
        if ips.count(n["NodeManagerAddress"]) == 1
        else f"{n['NodeManagerAddress']}-{n['NodeID'][:6]}"
        for n in nodes
    }


def plan_slots(nodes: Sequence[dict], actors_per_node: int | None) -> list[NodeSlot]:
    """Actors on every alive node with CPUs: `actors_per_node`, or one per CPU."""
    alive = [n for n in nodes if n.get("Alive") and n.get("Resources", {}).get("CPU", 0) > 0]
    labels = node_labels(alive)
    slots = []
    for node in sorted(alive, key=lambda n: labels[n["NodeID"]]):
        cpus = node["Resources"]["CPU"]
        count = actors_per_node or max(1, int(cpus))
        label = labels[node["NodeID"]]
        slots.append(NodeSlot(node["NodeID"], label, cpus, count, min(1.0, cpus / count)))
    return slots


def connect(address: str | None = None) -> None:
    """Join the cluster named by `address` or RAY_ADDRESS, a running local one, or start one."""
    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    options = {"logging_level": logging.WARNING, "log_to_driver": True}
    if address:
        ray.init(address=address, **options)
        return
    try:
        ray.init(address="auto", **options)
    except ConnectionError:
        _stay_on_loopback()
        ray.init(include_dashboard=False, **options)


def _stay_on_loopback() -> None:
    """Make the local cluster we start bind 127.0.0.1 rather than the machine's external address.

    Ray binds loopback only when RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, which it reads when it is
    imported: the variable reaches the processes it spawns, the constant this one.
    """
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    ray._private.ray_constants.ENABLE_RAY_CLUSTER = False


@dataclass
class _Actor:
    name: str
    node: str
    handle: ray.actor.ActorHandle
    alive: bool = True


@dataclass
class _Task:
    task_id: int
    actor: _Actor
    keys: list[str]
    future: asyncio.Future = field(repr=False)


TickHook = Callable[[str, "RayExecutor"], None]


class RayExecutor:
    """Runs workload phases on transfer actors spread over the Ray cluster."""

    def __init__(
        self,
        settings: Settings,
        endpoint: str | None,
        credentials: StaticCredentials | None,
        tick_s: float = 1.0,
    ) -> None:
        self._settings = settings
        self._endpoint = endpoint
        self._credentials = credentials
        self._tick_s = tick_s
        self._actors: list[_Actor] = []
        self._task_ids = itertools.count()
        self.totals = LiveTotals()
        self.rates: dict[tuple[str, str], float] = {}
        self.breakdown: dict[str, list[ActorPhaseResult]] = {}
        self.on_tick: TickHook | None = None
        self.gather_cpu_s = 0.0
        self.gathers = 0
        self.series: list[SeriesRow] = []
        self.node_cpus: dict[str, float] = {}
        self._started = self._last_sample = time.perf_counter()
        self._sampled: dict[tuple[str, str], OpStats] = {}

    @property
    def nodes(self) -> list[str]:
        return sorted({a.node for a in self._actors})

    @property
    def actor_count(self) -> int:
        return len(self._actors)

    def actors_per_node(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for actor in self._actors:
            counts[actor.node] = counts.get(actor.node, 0) + 1
        return counts

    def _actor_credentials(self) -> StaticCredentials:
        """The driver's credentials, handed to every actor so all nodes act as one identity."""
        if self._credentials is not None:
            return self._credentials
        frozen = resolve_credentials(self._settings.aws_profile).get_frozen_credentials()
        return StaticCredentials(frozen.access_key, frozen.secret_key, frozen.token)

    def start(self) -> None:
        credentials = self._actor_credentials()
        connect(self._settings.ray_address)
        slots = plan_slots(ray.nodes(), self._settings.actors_per_node)
        if not slots:
            raise S3DlioRayError("the Ray cluster has no alive node with CPUs to run actors on")
        self.node_cpus = {slot.label: slot.cpus for slot in slots}
        for slot in slots:
            for index in range(slot.actors):
                handle = TransferActor.options(
                    num_cpus=slot.cpus_each,
                    scheduling_strategy=NodeAffinitySchedulingStrategy(slot.node_id, soft=False),
                    max_restarts=0,
                ).remote(self._settings, self._endpoint, credentials)
                self._actors.append(_Actor(f"{slot.label}/{index}", slot.label, handle))
        try:
            ray.get([a.handle.info.remote() for a in self._actors], timeout=120)
        except ray.exceptions.GetTimeoutError:
            raise S3DlioRayError(
                f"{len(self._actors)} transfer actors could not be placed within 120 s: are the "
                "cluster's CPUs taken by another job? (set actors_per_node)"
            ) from None

    def _spread(self, spec: PhaseSpec, keys: Sequence[str], started: float) -> list[_Task]:
        """Shard `keys` over the live actors and start a run_phase call on each."""
        live = [a for a in self._actors if a.alive]
        control = phase_control(self._settings, spec, len(live), time.perf_counter() - started)
        tasks = []
        for actor, share in zip(live, shard(keys, len(live)), strict=True):
            if share:
                task_id = next(self._task_ids)
                ref = actor.handle.run_phase.remote(task_id, spec, share, control)
                tasks.append(_Task(task_id, actor, share, asyncio.wrap_future(ref.future())))
        return tasks

    async def run_phase(self, spec: PhaseSpec, keys: Sequence[str]) -> PhaseResult:
        phase = spec.phase
        if not any(a.alive for a in self._actors):
            raise S3DlioRayError(f"{phase}: no transfer actor is left alive in the cluster")
        started = time.perf_counter()
        tasks = self._spread(spec, keys, started)
        written: list[str] = []
        parts: list[ActorPhaseResult] = []
        unassigned: dict[str, str] = {}
        watcher = asyncio.ensure_future(self._watch(phase, tasks))
        try:
            while tasks:
                await asyncio.wait([t.future for t in tasks], return_when=asyncio.FIRST_COMPLETED)
                for task in [t for t in tasks if t.future.done()]:
                    tasks.remove(task)
                    try:
                        result: PhaseResult = task.future.result()
                    except ACTOR_LOST as exc:
                        tasks += self._reassign(task, spec, started, exc, unassigned)
                        continue
                    self.totals.finish(task.task_id, task.actor.node, phase, result.stats)
                    if phase == "put":
                        written += successful_writes(task.keys, result)
                    parts.append(ActorPhaseResult(task.actor.name, task.actor.node, result))
        finally:
            watcher.cancel()
        self._sample(phase)
        merged = merge_phase(phase, time.perf_counter() - started, [p.result for p in parts])
        merged.failed.update(unassigned)
        merged.stats.errors += len(unassigned)
        if phase == "put":
            merged.keys_written = written
        self.breakdown[phase] = parts
        return merged

    def _reassign(
        self,
        task: _Task,
        spec: PhaseSpec,
        started: float,
        exc: Exception,
        unassigned: dict[str, str],
    ) -> list[_Task]:
        task.actor.alive = False
        self.totals.abandon(task.task_id)
        live = sum(a.alive for a in self._actors)
        log.warning(
            "actor %s died during %s (%s); giving its %d keys to %d other actors",
            task.actor.name,
            spec.phase,
            type(exc).__name__,
            len(task.keys),
            live,
        )
        if not live:
            reason = f"actor {task.actor.name} died and no live actor was left to take the key"
            unassigned.update(dict.fromkeys(task.keys, reason))
            return []
        return self._spread(spec, task.keys, started)

    async def _watch(self, phase: str, tasks: list[_Task]) -> None:
        """Every tick: gather snapshots from the running tasks' actors, then take a sample;
        with autoterm, stop every running share once the cluster's throughput is steady."""
        settings = self._settings
        detector = (
            SteadyDetector(settings.autoterm_window_s, settings.autoterm_pct)
            if settings.autoterm
            else None
        )
        started = time.perf_counter()
        while True:
            await asyncio.sleep(self._tick_s)
            cpu0 = time.process_time()
            running = {t.actor.name: t for t in tasks}
            refs = [t.actor.handle.snapshot.remote() for t in running.values()]
            replies = await asyncio.gather(*refs, return_exceptions=True)
            for task, reply in zip(running.values(), replies, strict=True):
                if isinstance(reply, BaseException):
                    continue
                task_id, snapshot = reply
                self.totals.observe(task_id, task.actor.node, snapshot)
            rate = self._sample(phase)
            if detector is not None and detector.add(time.perf_counter() - started, rate):
                detector = None
                for task in tasks:
                    task.actor.handle.stop.remote(task.task_id)
            self.gather_cpu_s += time.process_time() - cpu0
            self.gathers += 1
            if self.on_tick is not None:
                self.on_tick(phase, self)

    def _sample(self, phase: str) -> float:
        """Rates since the previous sample, and one time-series row per node for this phase.

        Taken every tick and once more when the phase ends, so the rows of a phase add up to
        exactly what its result counts (when no actor died). Answers the phase's cluster-wide
        rate for autoterm.
        """
        now = time.perf_counter()
        elapsed = max(now - self._last_sample, 1e-9)
        concurrency = self.totals.concurrency()
        moved_bytes = moved_ops = 0
        for (node, op), stats in self.totals.totals.items():
            delta = stats.since(self._sampled.get((node, op), OpStats()))
            self.rates[(node, op)] = delta.bytes / elapsed
            self._sampled[(node, op)] = copy.deepcopy(stats)
            if op == phase:
                moved_bytes += delta.bytes
                moved_ops += delta.ops
                limit, in_flight = concurrency.get(node, (0, 0))
                self.series.append(
                    SeriesRow(
                        time.time(),
                        now - self._started,
                        node,
                        op,
                        delta.bytes,
                        delta.ops,
                        delta.errors,
                        self.rates[(node, op)] / 1e9,
                        limit,
                        in_flight,
                    )
                )
        self._last_sample = now
        return steadiness_rate(moved_bytes, moved_ops, elapsed)

    async def close(self) -> None:
        """Stop the actors (their connections close with them); safe to call twice."""
        for actor in self._actors:
            if actor.alive:
                with contextlib.suppress(ACTOR_LOST):
                    await actor.handle.close.remote()
                ray.kill(actor.handle)
        self._actors.clear()
