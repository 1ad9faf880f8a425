"""The transfer actor: one engine in one process, running the shares of phases it is given."""

from __future__ import annotations

import asyncio
import os
import socket
from dataclasses import dataclass

import ray

from s3dlio_ray.config import Settings
from s3dlio_ray.control import PhaseControl
from s3dlio_ray.engine import EngineSnapshot, PhaseResult
from s3dlio_ray.runner import PhaseSpec, TransferEngine, build_engine, run_share
from s3dlio_ray.s3.signing import StaticCredentials


@dataclass(frozen=True)
class ActorInfo:
    node_id: str
    node_ip: str
    hostname: str
    pid: int


@ray.remote
class TransferActor:
    """Async actor: snapshot() answers while run_phase() transfers, on the same event loop.

    Shares run one at a time (a lock), so a share reassigned from a dead actor queues behind the
    current one instead of sharing its statistics.
    """

    def __init__(
        self, settings: Settings, endpoint: str | None, credentials: StaticCredentials | None
    ) -> None:
        self._settings = settings
        self._endpoint = endpoint
        self._credentials = credentials
        self._engine: TransferEngine | None = None
        self._lock: asyncio.Lock | None = None
        self._task_id = -1

    def info(self) -> ActorInfo:
        context = ray.get_runtime_context()
        return ActorInfo(
            context.get_node_id(), ray.util.get_node_ip_address(), socket.gethostname(), os.getpid()
        )

    def _engine_here(self) -> TransferEngine:
        if self._engine is None:
            self._engine = build_engine(self._settings, self._endpoint, self._credentials)
        return self._engine

    async def run_phase(
        self, task_id: int, spec: PhaseSpec, keys: list[str], control: PhaseControl
    ) -> PhaseResult:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            self._task_id = task_id
            return await run_share(
                self._engine_here(), self._settings, task_id, spec, keys, control
            )

    async def stop(self, task_id: int) -> None:
        """Autoterm: end share `task_id` early, if it is the one running."""
        if self._engine is not None and self._task_id == task_id:
            self._engine.stop()

    async def snapshot(self) -> tuple[int, EngineSnapshot | None]:
        """(task id, running statistics) of the share in progress."""
        if self._engine is None:
            return self._task_id, None
        return self._task_id, self._engine.snapshot()

    async def close(self) -> None:
        if self._engine is not None:
            await self._engine.aclose()
