"""The transfer actor: one engine in one Ray worker process, running the shares it is given."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass

import ray

from s3dlio_ray._internal.execution.admission import ShareLimits
from s3dlio_ray._internal.execution.build import Seat, build_engine
from s3dlio_ray._internal.execution.engine import EngineSnapshot
from s3dlio_ray._internal.execution.host import EngineHost
from s3dlio_ray._internal.execution.phases.transfer import PhaseSpec
from s3dlio_ray._internal.model.results import ShareResult
from s3dlio_ray._internal.model.vocabulary import EndedBy
from s3dlio_ray._internal.settings.schema import Settings
from s3dlio_ray._internal.storage.access import Access
from s3dlio_ray._internal.tuning.cluster import Steer


@dataclass(frozen=True)
class ActorInfo:
    node_id: str
    node_ip: str
    hostname: str
    pid: int


class TransferActor:
    """Async actor: snapshot() answers while run_share() transfers, on the same event loop."""

    def __init__(
        self,
        settings: Settings,
        access: Access,
        seat: Seat,
    ) -> None:
        self._host = EngineHost(lambda: build_engine(settings, access, seat))

    def info(self) -> ActorInfo:
        """Where the actor runs, once its engine is built (a bad bind address fails here)."""
        self._host.prepare()
        context = ray.get_runtime_context()
        return ActorInfo(
            context.get_node_id(), ray.util.get_node_ip_address(), socket.gethostname(), os.getpid()
        )

    async def run_share(
        self, task_id: int, spec: PhaseSpec, keys: Sequence[str], limits: ShareLimits
    ) -> ShareResult:
        return await self._host.run_share(task_id, spec, keys, limits)

    async def clock(self) -> float:
        """This node's wall clock (a replay measures each node's offset from the driver's)."""
        return time.time()

    async def stop(self, task_id: int, reason: EndedBy) -> None:
        """End share `task_id` early (autoterm, interruption), if it is the one running."""
        self._host.stop(task_id, reason)

    async def snapshot(
        self, steer: tuple[int, Steer] | None = None, adjust: ShareLimits | None = None
    ) -> tuple[int, EngineSnapshot | None]:
        """(task id, running statistics) of the share in progress; `steer` first steers it
        (the cluster controller's ceiling and pace), if it is the share named, and `adjust`
        gives the engine the run's latest changes."""
        return self._host.snapshot(steer, adjust)

    async def close(self) -> None:
        await self._host.close()


TRANSFER_ACTOR = ray.remote(TransferActor)
"""The transfer actor as a Ray actor class."""
