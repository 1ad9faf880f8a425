"""What the phase executor drives: a pool of workers, each an engine somewhere (a Ray actor on a
node, or this process) that runs shares and answers with its statistics each second. The Ray
pool and the local pool both satisfy it."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Protocol

from s3dlio_ray._internal.execution.admission import ShareLimits
from s3dlio_ray._internal.execution.engine import EngineSnapshot
from s3dlio_ray._internal.execution.phases.transfer import PhaseSpec
from s3dlio_ray._internal.model.results import ShareResult
from s3dlio_ray._internal.model.vocabulary import EndedBy
from s3dlio_ray._internal.tuning.cluster import Steer


class Worker(Protocol):
    """One engine somewhere (an actor on a node, or this process) that runs shares."""

    name: str
    node: str

    async def run_share(
        self, task_id: int, spec: PhaseSpec, keys: Sequence[str], limits: ShareLimits
    ) -> ShareResult: ...

    def stop(self, task_id: int, reason: EndedBy) -> None:
        """Ask share `task_id` to end early; answers at once."""
        ...

    async def clock(self) -> float:
        """The worker's node's wall clock, time.time()."""
        ...

    async def close(self) -> None: ...


class WorkerPool(Protocol):
    """Workers placed for a run, and what it means that one is gone."""

    executor: str
    workers: list[Worker]
    node_cpus: dict[str, float]
    lost: tuple[type[BaseException], ...]

    async def snapshots(
        self, asks: Sequence[Ask], adjust: ShareLimits | None = None
    ) -> list[Reply | BaseException]:
        """Each asked worker's (task id, statistics) of its running share, in order, or the
        exception that kept it from answering; a steer (task id, how) steers that share first,
        if it is the one running, and `adjust` gives every asked engine the run's changes."""
        ...

    async def close(self) -> None: ...


Ask = tuple[Worker, tuple[int, Steer] | None]
Reply = tuple[int, EngineSnapshot | None]


class Answering(Protocol):
    """A worker in this process that answers for itself."""

    async def snapshot(
        self, steer: tuple[int, Steer] | None = None, adjust: ShareLimits | None = None
    ) -> Reply: ...


async def ask_each(
    asks: Sequence[tuple[Answering, tuple[int, Steer] | None]], adjust: ShareLimits | None = None
) -> list[Reply | BaseException]:
    """Snapshots from workers that answer for themselves: one call each."""
    return await asyncio.gather(
        *(worker.snapshot(steer, adjust) for worker, steer in asks), return_exceptions=True
    )
