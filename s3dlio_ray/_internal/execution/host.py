"""One engine hosted in one process (a Ray actor, or the driver's own for `executor: local`),
running the shares it is given one at a time."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from s3dlio_ray._internal.execution.admission import ShareLimits
from s3dlio_ray._internal.execution.engine import Engine, EngineSnapshot
from s3dlio_ray._internal.execution.phases.transfer import PhaseSpec
from s3dlio_ray._internal.model.results import ShareResult
from s3dlio_ray._internal.model.stats import OpStats
from s3dlio_ray._internal.model.vocabulary import EndedBy
from s3dlio_ray._internal.tuning.cluster import Steer


class EngineHost:
    """One engine in one process, running the shares it is given one at a time (a lock), so a
    share reassigned from a lost worker queues behind the current one instead of sharing its
    statistics. The engine is built on first use, where it runs."""

    def __init__(self, build: Callable[[], Engine]) -> None:
        self._build = build
        self.engine: Engine | None = None
        self._lock: asyncio.Lock | None = None
        self._task_id = -1
        self._stopped: dict[int, EndedBy] = {}

    def prepare(self) -> Engine:
        """Build the engine now, so a setting only its node can judge (an interface name) is
        refused before the run writes anything."""
        if self.engine is None:
            self.engine = self._build()
        return self.engine

    async def run_share(
        self, task_id: int, spec: PhaseSpec, keys: Sequence[str], limits: ShareLimits
    ) -> ShareResult:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            stopped = self._stopped.pop(task_id, None)
            if stopped is not None:
                return ShareResult(spec.phase, 0.0, OpStats(), ended_by=stopped)
            self._task_id = task_id
            return await self.prepare().run_share(spec, keys, limits, task_id)

    def stop(self, task_id: int, reason: EndedBy) -> None:
        """Stop share `task_id`: the running one at once, a queued one before it starts."""
        if self._task_id == task_id:
            if self.engine is not None:
                self.engine.stop(reason)
        elif task_id > self._task_id:
            self._stopped[task_id] = reason

    def snapshot(
        self, steer: tuple[int, Steer] | None = None, adjust: ShareLimits | None = None
    ) -> tuple[int, EngineSnapshot | None]:
        if self.engine is None:
            return self._task_id, None
        if adjust is not None:
            self.engine.adjust(adjust)
        if steer is not None and steer[0] == self._task_id:
            self.engine.steer(steer[1])
        return self._task_id, self.engine.snapshot()

    async def close(self) -> None:
        """Close the engine (its connections, its op-log); safe to call twice."""
        engine, self.engine = self.engine, None
        if engine is not None:
            await engine.aclose()
