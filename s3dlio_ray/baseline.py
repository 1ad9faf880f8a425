"""The baseline configuration: plain boto3 put_object/get_object on a thread pool.

It answers the same calls as Engine (put, get, snapshot, aclose) and records the same statistics,
so a workload can run it beside the engine on the same keys and print the ratio. Concurrency is
fixed (boto3 has no adaptive control): the setting's number, or 8 (close to boto3's usual 10).
"""

from __future__ import annotations

import asyncio
import copy
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from s3dlio_ray.control import WHOLE_PHASE, Admission, PhaseControl, phase_keys
from s3dlio_ray.engine import EngineSnapshot, PhaseResult
from s3dlio_ray.errors import S3DlioRayError
from s3dlio_ray.s3.signing import StaticCredentials
from s3dlio_ray.sizes import ObjectSizes
from s3dlio_ray.stats import OpStats
from s3dlio_ray.workload import ObjectData, VerifyTally

DEFAULT_CONCURRENCY = 8


class Boto3Engine:
    """Runs a phase's keys through boto3 with `concurrency` threads."""

    def __init__(
        self,
        endpoint: str | None,
        region: str,
        credentials: StaticCredentials | None,
        concurrency: int | None,
    ) -> None:
        self.concurrency = concurrency or DEFAULT_CONCURRENCY
        keys = (
            {
                "aws_access_key_id": credentials.access_key_id,
                "aws_secret_access_key": credentials.secret_access_key,
                "aws_session_token": credentials.session_token,
            }
            if credentials
            else {}
        )
        self._s3 = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name=region,
            config=Config(max_pool_connections=self.concurrency, s3={"addressing_style": "path"}),
            **keys,
        )
        self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="boto3")
        self._lock = threading.Lock()
        self._live: tuple[str, OpStats] | None = None
        self._admission: Admission | None = None
        self._in_flight = 0

    def snapshot(self) -> EngineSnapshot | None:
        if self._live is None:
            return None
        phase, stats = self._live
        with self._lock:
            copied = copy.deepcopy(stats)
        return EngineSnapshot(phase, copied, self.concurrency, self._in_flight)

    def stop(self) -> None:
        """End the running phase early (autoterm): start nothing new, let what runs finish."""
        if self._admission is not None:
            self._admission.stop_requested = True

    async def put(
        self,
        bucket: str,
        keys: Sequence[str],
        sizes: ObjectSizes,
        data: ObjectData,
        control: PhaseControl = WHOLE_PHASE,
    ) -> PhaseResult:
        def put_one(key: str) -> tuple[int, float | None]:
            size = sizes.of(key)
            self._s3.put_object(Bucket=bucket, Key=key, Body=data.content(key, size))
            return size, None

        return await self._run("put", phase_keys("put", keys, control), put_one, control, sizes.of)

    async def get(
        self,
        bucket: str,
        keys: Sequence[str],
        sizes: ObjectSizes,
        data: ObjectData,
        verify: bool = True,
        control: PhaseControl = WHOLE_PHASE,
    ) -> PhaseResult:
        tally = VerifyTally(data)

        def get_one(key: str) -> tuple[int, float | None]:
            started = time.perf_counter()
            response = self._s3.get_object(Bucket=bucket, Key=key)
            ttfb = time.perf_counter() - started
            body = response["Body"].read()
            if verify:
                tally.check(key, memoryview(body), sizes.of(key))
            return len(body), ttfb

        result = await self._run(
            "get", phase_keys("get", keys, control), get_one, control, sizes.of
        )
        result.verified, result.verify_failures = tally.verified, tally.failures
        return result

    async def _run(
        self,
        phase: str,
        keys: Iterable[str],
        do_one: Callable[[str], tuple[int, float | None]],
        control: PhaseControl,
        cost: Callable[[str], int],
    ) -> PhaseResult:
        stats = OpStats()
        result = PhaseResult(
            phase,
            0.0,
            stats,
            start_concurrency=self.concurrency,
            final_concurrency=self.concurrency,
            peak_concurrency=self.concurrency,
        )
        self._live = (phase, stats)
        admission = self._admission = Admission(control, cost)
        loop = asyncio.get_running_loop()
        slots = asyncio.Semaphore(self.concurrency)

        def timed(key: str) -> None:
            started = time.perf_counter()
            try:
                nbytes, ttfb = do_one(key)
            except (BotoCoreError, ClientError, S3DlioRayError) as exc:
                with self._lock:
                    stats.errors += 1
                    result.failed[key] = f"{phase} {key}: {exc}"
                return
            with self._lock:
                stats.record(nbytes, time.perf_counter() - started, ttfb)

        async def one(key: str) -> None:
            self._in_flight += 1
            try:
                await loop.run_in_executor(self._pool, timed, key)
            finally:
                self._in_flight -= 1
                slots.release()

        try:
            result.dispatched, result.ended_by = await admission.run(
                keys, slots.acquire, slots.release, one
            )
        finally:
            self._live = None
            self._admission = None
        result.elapsed_s = time.perf_counter() - admission.started
        return result

    async def aclose(self) -> None:
        self._pool.shutdown(wait=False)
        self._s3.close()
