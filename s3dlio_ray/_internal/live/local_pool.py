"""`executor: local`: the run's one engine in the driver's own process, no Ray."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Sequence

from s3dlio_ray._internal.execution.admission import ShareLimits
from s3dlio_ray._internal.execution.engine import Engine, EngineSnapshot
from s3dlio_ray._internal.execution.host import EngineHost
from s3dlio_ray._internal.execution.phases.transfer import PhaseSpec
from s3dlio_ray._internal.live.pool import Ask, Reply, Worker, ask_each
from s3dlio_ray._internal.model.results import ShareResult
from s3dlio_ray._internal.model.vocabulary import EndedBy
from s3dlio_ray._internal.tuning.cluster import Steer


class LocalWorker:
    """The one engine of `executor: local`, in this process."""

    def __init__(self, host: EngineHost) -> None:
        self.node = socket.gethostname()
        self.name = f"{self.node}/local"
        self._host = host

    async def run_share(
        self, task_id: int, spec: PhaseSpec, keys: Sequence[str], limits: ShareLimits
    ) -> ShareResult:
        return await self._host.run_share(task_id, spec, keys, limits)

    async def snapshot(
        self, steer: tuple[int, Steer] | None = None, adjust: ShareLimits | None = None
    ) -> tuple[int, EngineSnapshot | None]:
        return self._host.snapshot(steer, adjust)

    def stop(self, task_id: int, reason: EndedBy) -> None:
        self._host.stop(task_id, reason)

    async def clock(self) -> float:
        return time.time()

    async def close(self) -> None:
        await self._host.close()


class LocalPool:
    """`executor: local`: one engine in this process, no Ray."""

    executor = "local"
    lost: tuple[type[BaseException], ...] = ()

    def __init__(self, build: Callable[[], Engine], cpus: float) -> None:
        host = EngineHost(build)
        host.prepare()
        worker = self._worker = LocalWorker(host)
        self.workers: list[Worker] = [worker]
        self.node_cpus = {worker.node: cpus}

    async def snapshots(
        self, asks: Sequence[Ask], adjust: ShareLimits | None = None
    ) -> list[Reply | BaseException]:
        return await ask_each([(self._worker, steer) for _, steer in asks], adjust)

    async def close(self) -> None:
        for worker in self.workers:
            await worker.close()
