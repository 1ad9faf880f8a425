"""Ray placement: transfer actors on every alive node, as workers the phase executor drives.

The driver joins the cluster (or starts a local one on loopback), places actors with node
affinity sized from the CPUs each node has free (so a Ray program that already holds resources
keeps them), and wraps each actor as a `Worker`. Everything else (sharding, watching, autoterm,
reassignment) is the Ray-free executor's.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import resource
import shutil
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import ray
from ray._common.utils import get_ray_address_file
from ray.exceptions import ActorUnavailableError, GetTimeoutError, RayActorError, RayTaskError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from s3dlio_ray._internal.cluster.actor import TRANSFER_ACTOR
from s3dlio_ray._internal.cluster.gatherer import NODE_GATHERER
from s3dlio_ray._internal.execution.admission import ShareLimits
from s3dlio_ray._internal.execution.build import Seat
from s3dlio_ray._internal.execution.phases.transfer import PhaseSpec
from s3dlio_ray._internal.live.pool import Ask, Reply, Worker
from s3dlio_ray._internal.model.errors import S3DlioRayError, Terminated
from s3dlio_ray._internal.model.results import ShareResult
from s3dlio_ray._internal.model.vocabulary import EndedBy
from s3dlio_ray._internal.settings.schema import Settings
from s3dlio_ray._internal.storage.access import Access
from s3dlio_ray._internal.storage.s3.signing import StaticCredentials, resolve_credentials

log = logging.getLogger(__name__)

ACTOR_LOST = (RayActorError, ActorUnavailableError)
PLACEMENT_TIMEOUT_S = 120
RELEASE_TIMEOUT_S = 10


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


def plan_slots(
    nodes: Sequence[dict],
    actors_per_node: int | None,
    free_cpus: Mapping[str, float] | None = None,
) -> list[NodeSlot]:
    """Actors on every alive node with free CPUs: `actors_per_node`, or one per free CPU.

    `free_cpus` (node id -> CPUs not held by anyone) sizes the plan; without it, the nodes'
    totals do.
    """

    def cpus_of(node: dict) -> float:
        total = node.get("Resources", {}).get("CPU", 0)
        return total if free_cpus is None else min(total, free_cpus.get(node["NodeID"], 0.0))

    alive = [n for n in nodes if n.get("Alive") and cpus_of(n) > 0]
    labels = node_labels(alive)
    slots = []
    for node in sorted(alive, key=lambda n: labels[n["NodeID"]]):
        cpus = cpus_of(node)
        count = actors_per_node or max(1, int(cpus))
        label = labels[node["NodeID"]]
        slots.append(NodeSlot(node["NodeID"], label, cpus, count, min(1.0, cpus / count)))
    return slots


def nodes_elsewhere(nodes: Sequence[dict], slots: Sequence[NodeSlot], here: str) -> list[str]:
    """Labels of the slots on machines other than this one (address `here`, or loopback)."""
    addresses = {n["NodeID"]: n["NodeManagerAddress"] for n in nodes}
    return [s.label for s in slots if addresses[s.node_id] not in (here, "127.0.0.1")]


def cluster_lost() -> bool:
    """Whether the Ray cluster went down under this process (its processes were signalled
    with the driver's process group): Ray's shutdown would wait up to a minute for it, then
    crash. Asked once, as the command exits."""
    if not ray.is_initialized():
        return False
    return not answers(ray.get_runtime_context().gcs_address, timeout_s=1.0)


def cluster_running(address: str | None = None) -> bool:
    """Whether a run would join a Ray cluster that already runs: this process joined one, an
    address is named (RAY_ADDRESS=local names none), or a live local cluster left its record."""
    if ray.is_initialized():
        return True
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        return address != "local"
    recorded = _read(get_ray_address_file(None))
    return recorded is not None and answers(recorded)


def connect(address: str | None = None) -> None:
    """Join the cluster this process already joined, the one named by `address` or
    RAY_ADDRESS ("local": a private one), a running local one, or start one on loopback.

    An address that does not answer, or a local cluster record left by a head that is gone, is
    one line within seconds, not minutes of Ray retrying.
    """
    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    options: dict[str, Any] = {"logging_level": logging.ERROR, "log_to_driver": True}
    if address and address != "local":
        if not answers(address):
            raise S3DlioRayError(
                f"the Ray cluster at {address} does not answer: check ray_address / "
                "RAY_ADDRESS, or unset it to start a local cluster"
            )
        _init(address=address, **options)
        return
    record = get_ray_address_file(None)
    recorded = _read(record) if address != "local" else None
    if recorded:
        if not answers(recorded):
            raise S3DlioRayError(
                f"the local Ray cluster record {record} names {recorded}, which does not "
                "answer (its head is gone): run `ray stop` (or delete that file), or set "
                "RAY_ADDRESS=local for a private cluster"
            )
        _init(address="auto", **options)
        return
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    if limit != resource.RLIM_INFINITY and limit < RAY_ROOM_BYTES:
        # Ray would spend half a minute failing to start its processes.
        raise S3DlioRayError(f"Ray cannot start a local cluster here: {_starting_hint()}")
    _stay_on_loopback()
    _init(address="local", include_dashboard=False, **options)


def _init(**options: Any) -> None:
    """ray.init, keeping this process's own SIGTERM handler: Ray replaces it with one that
    exits at once (code 15, or 1 after stopping its processes), and its core worker adds a
    crash handler that turns SIGTERM into an abort with a C++ stack dump (exit 134), so a
    SIGTERM while Ray starts ended the command silently or with the dump. The driver's crash
    handler is left out (Ray's processes keep theirs), so is the drain a node started here
    waits for on SIGTERM (for serving deployments; a run has nothing to drain, and the wait
    for a control store the signal stopped too took 28 s), and a SIGTERM while Ray starts is
    Terminated."""
    ray._private.ray_constants.RAY_DISABLE_FAILURE_SIGNAL_HANDLER = True
    ray._private.ray_constants.RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S = 0
    main = threading.current_thread() is threading.main_thread()
    own = signal.getsignal(signal.SIGTERM) if main else None
    try:
        ray.init(**options)
    except SystemExit:
        raise Terminated from None
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise S3DlioRayError(f"Ray could not start: {reason} ({_starting_hint()})") from None
    finally:
        if own is not None:
            signal.signal(signal.SIGTERM, own)


def _starting_hint() -> str:
    """What most often keeps Ray from starting on a machine: a limit on file sizes, or a full
    disk where it keeps its session files."""
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    if limit != resource.RLIM_INFINITY:
        return (
            f"this process may write files of at most {limit:,} bytes (ulimit -f): Ray's "
            "session files need more; raise the limit, or --executor local for a small job"
        )
    folder = os.environ.get("RAY_TMPDIR") or tempfile.gettempdir()
    free = shutil.disk_usage(folder).free
    if free < RAY_ROOM_BYTES:
        return f"only {free / 2**20:,.0f} MiB free in {folder}, where Ray keeps its files"
    return f"Ray's own logs are under {folder}/ray/session_latest/logs"


RAY_ROOM_BYTES = 1 << 30
"""Less free space than this where Ray keeps its session files is named as the likely cause,
and a smaller limit on file sizes keeps a local cluster from starting at all."""


def answers(address: str, timeout_s: float = 3.0) -> bool:
    """Whether a GCS address (HOST:PORT) accepts a connection; other forms are left to Ray."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or "/" in address:
        return True
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            return True
    except OSError:
        return False


def _read(path: str) -> str | None:
    try:
        with open(path) as record:
            return record.read().strip() or None
    except OSError:
        return None


def _stay_on_loopback() -> None:
    """Make the local cluster we start bind 127.0.0.1 rather than the machine's external address.

    Ray binds loopback only when RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, which it reads when it is
    imported: the variable reaches the processes it spawns, the constant this one. It is set
    only here, once no cluster could be joined: a driver joining a cluster must keep its address.
    """
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    ray._private.ray_constants.ENABLE_RAY_CLUSTER = False


def free_cpus() -> dict[str, float]:
    """CPUs not held by any task, actor or placement group, per node id."""
    return {
        node_id: resources.get("CPU", 0.0)
        for node_id, resources in ray._private.state.available_resources_per_node().items()
    }


class RayWorker:
    """A transfer actor, as the executor's Worker; `seat`: its index among its node's actors."""

    def __init__(self, name: str, node: str, seat: int, handle: ray.actor.ActorHandle) -> None:
        self.name = name
        self.node = node
        self.seat = seat
        self.handle = handle

    async def run_share(
        self, task_id: int, spec: PhaseSpec, keys: Sequence[str], limits: ShareLimits
    ) -> ShareResult:
        ref: ray.ObjectRef = self.handle.run_share.remote(task_id, spec, keys, limits)
        return await asyncio.wrap_future(ref.future())

    def stop(self, task_id: int, reason: EndedBy) -> None:
        self.handle.stop.remote(task_id, reason)

    async def clock(self) -> float:
        now: float = await self.handle.clock.remote()
        return now

    async def close(self) -> None:
        with contextlib.suppress(*ACTOR_LOST):
            await self.handle.close.remote()
        ray.kill(self.handle)


def _handle(worker: Worker) -> ray.actor.ActorHandle:
    """The actor behind a worker of this pool (every one is a RayWorker)."""
    return cast(RayWorker, worker).handle


class RayPool:
    """Transfer actors on every alive node of the Ray cluster."""

    executor = "ray"
    lost: tuple[type[BaseException], ...] = ACTOR_LOST

    def __init__(
        self,
        settings: Settings,
        access: Access,
    ) -> None:
        self._settings = settings
        self._access = access
        self.workers: list[Worker] = []
        self.node_cpus: dict[str, float] = {}
        self.elsewhere: list[str] = []
        """Nodes on other machines than the driver's (they cannot reach its loopback)."""
        self._held = 0.0
        self._gatherers: dict[str, ray.actor.ActorHandle] = {}
        self._gcs = ""

    def _actor_access(self) -> Access:
        """The run's access with the driver's credentials, handed to every actor so all nodes
        act as one identity."""
        if self._access.credentials is not None:
            return self._access
        frozen = resolve_credentials(self._settings.aws_profile).get_frozen_credentials()
        credentials = StaticCredentials(frozen.access_key, frozen.secret_key, frozen.token)
        return dataclasses.replace(self._access, credentials=credentials)

    def start(self) -> RayPool:
        access = self._actor_access()
        connect(self._settings.ray_address)
        self._gcs = ray.get_runtime_context().gcs_address
        nodes = ray.nodes()
        slots = plan_slots(nodes, self._settings.actors_per_node, free_cpus())
        if not slots:
            raise S3DlioRayError(
                "the Ray cluster has no alive node with free CPUs to run actors on"
            )
        self.node_cpus = {slot.label: slot.cpus for slot in slots}
        self.elsewhere = nodes_elsewhere(nodes, slots, ray.util.get_node_ip_address())
        for slot in slots:
            for index in range(slot.actors):
                # Ray types an options wrapper's remote() as a handle or the class itself.
                handle = cast(
                    ray.actor.ActorHandle,
                    TRANSFER_ACTOR.options(
                        num_cpus=slot.cpus_each,
                        scheduling_strategy=NodeAffinitySchedulingStrategy(
                            slot.node_id, soft=False
                        ),
                        max_restarts=0,
                    ).remote(
                        self._settings,
                        access,
                        Seat(len(self.workers), index),
                    ),
                )
                self.workers.append(RayWorker(f"{slot.label}/{index}", slot.label, index, handle))
                self._held += slot.cpus_each
            if slot.actors > 1:
                self._gatherers[slot.label] = cast(
                    ray.actor.ActorHandle,
                    NODE_GATHERER.options(
                        num_cpus=0,
                        max_restarts=0,
                        scheduling_strategy=NodeAffinitySchedulingStrategy(
                            slot.node_id, soft=False
                        ),
                    ).remote([_handle(w) for w in self.workers if w.node == slot.label]),
                )
        try:
            ray.get([_handle(w).info.remote() for w in self.workers], timeout=PLACEMENT_TIMEOUT_S)
        except RayTaskError as exc:
            if isinstance(exc.cause, S3DlioRayError):
                raise exc.cause from None
            raise
        except GetTimeoutError:
            raise S3DlioRayError(
                f"{len(self.workers)} transfer actors could not be placed within "
                f"{PLACEMENT_TIMEOUT_S} s: are the cluster's CPUs taken by another job? "
                "(set actors_per_node)"
            ) from None
        return self

    async def snapshots(
        self, asks: Sequence[Ask], adjust: ShareLimits | None = None
    ) -> list[Reply | BaseException]:
        """One call per node: a node's gatherer asks its own actors (a node of one actor, which
        has no gatherer, is asked directly)."""
        by_node: dict[str, list[int]] = {}
        for position, (worker, _) in enumerate(asks):
            by_node.setdefault(worker.node, []).append(position)
        answers = await asyncio.gather(
            *(
                self._ask_node(node, [asks[p] for p in positions], adjust)
                for node, positions in by_node.items()
            ),
            return_exceptions=True,
        )
        replies: list[Reply | BaseException] = [LookupError("not asked")] * len(asks)
        for positions, answer in zip(by_node.values(), answers, strict=True):
            for index, position in enumerate(positions):
                reply = answer if isinstance(answer, BaseException) else answer[index]
                replies[position] = LookupError("did not answer") if reply is None else reply
        return replies

    async def _ask_node(
        self, node: str, asks: Sequence[Ask], adjust: ShareLimits | None
    ) -> list[Reply | None]:
        seated = [(cast(RayWorker, worker), steer) for worker, steer in asks]
        gatherer = self._gatherers.get(node)
        if gatherer is None:
            return [await worker.handle.snapshot.remote(steer, adjust) for worker, steer in seated]
        seats = [(worker.seat, steer) for worker, steer in seated]
        return await gatherer.snapshots.remote(seats, adjust)

    async def close(self) -> None:
        """Stop the actors (their connections close with them) and wait until Ray has their
        CPUs back, so a next run in this process finds them free; safe to call twice."""
        if not self.workers:
            return
        if not answers(self._gcs, timeout_s=1.0):
            # The cluster went down with the run (a signal to the whole process group stops
            # Ray's processes too): nothing is left to free, and every Ray call would wait a
            # minute for its control store; the command ends without Ray's own shutdown.
            self.workers.clear()
            self._gatherers.clear()
            self._held = 0.0
            return
        before = sum(free_cpus().values())
        for worker in self.workers:
            await worker.close()
        self.workers.clear()
        for gatherer in self._gatherers.values():
            ray.kill(gatherer)
        self._gatherers.clear()
        deadline = time.monotonic() + RELEASE_TIMEOUT_S
        while sum(free_cpus().values()) < before + self._held - 1e-6:
            if time.monotonic() > deadline:
                log.warning("Ray has not yet freed the transfer actors' CPUs")
                break
            await asyncio.sleep(0.05)
        self._held = 0.0
