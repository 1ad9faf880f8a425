"""REPLAY: issue a logged workload again, each request at its recorded time (open loop),
sharded over the actors by key.

The driver reads the logs and plans them (replay.plan), creates the objects the log reads
before writing them, measures each node's clock against its own and starts every actor at one
wall-clock moment at least a second ahead. An actor issues its share's requests when due,
whether or not earlier ones have ended (up to its concurrency cap); a request on a key waits for
the one before it on that key, so a PUT still precedes the GET of the same key.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import time
from collections.abc import Sequence
from typing import NamedTuple

from s3dlio_ray._internal.execution.admission import ShareLimits
from s3dlio_ray._internal.execution.phases.step import Run, run_recorded, spec_of
from s3dlio_ray._internal.execution.phases.transfer import (
    Done,
    PhaseSpec,
    ReplaySpec,
    TransferOutcome,
)
from s3dlio_ray._internal.model.checks import ReadCheck
from s3dlio_ray._internal.model.content import ObjectData
from s3dlio_ray._internal.model.keys import ListedKeys, Listing, run_prefix
from s3dlio_ray._internal.model.results import PhaseResult, ReplayInfo
from s3dlio_ray._internal.model.stats import OpStats
from s3dlio_ray._internal.model.vocabulary import Phase
from s3dlio_ray._internal.replay.formats import merged
from s3dlio_ray._internal.replay.logs import read_logs
from s3dlio_ray._internal.replay.plan import (
    Lane,
    Mapped,
    OwnNames,
    ReplayOp,
    ReplayPlan,
    Rewrite,
    Target,
    plan,
)
from s3dlio_ray._internal.storage.object_store import ObjectStore
from s3dlio_ray._internal.storage.s3.client import MAX_DELETE_BATCH, PartGate
from s3dlio_ray._internal.storage.s3.errors import S3Error

notes = logging.getLogger("s3dlio_ray.notes")
"""Lines the command line shows as they are (what a replay read)."""

LEAD_S = 1.0
"""How far ahead of now the driver sets the start: every actor has its share by then."""
LEAD_PER_OP_S = 10e-6
"""More lead per operation sent to the actors (a large log takes longer to hand out)."""


class Request(NamedTuple):
    """One request of a share: a logged one, on one key or (a delete) several."""

    at_s: float
    op: str
    keys: tuple[str, ...]
    size: int

    def __str__(self) -> str:
        more = f" (+{len(self.keys) - 1} keys)" if len(self.keys) > 1 else ""
        return f"{self.op} {self.keys[0]}{more}"


def requests(lanes: Sequence[Lane]) -> list[Request]:
    """A share's lanes as the requests it sends, in schedule order: a delete's parts in the
    share's lanes are one request."""
    groups: dict[int, list[ReplayOp]] = {}
    for lane in lanes:
        for op in lane:
            groups.setdefault(op.row, []).append(op)
    ordered = sorted(groups.values(), key=lambda ops: (ops[0].at_s, ops[0].row))
    return [
        Request(ops[0].at_s, ops[0].op, tuple(op.key for op in ops), ops[0].size) for ops in ordered
    ]


def replay_workload(logs: Sequence[str]) -> dict[str, object]:
    """The workload of `s3dlio-ray replay LOG...`: the replay, then the run's cleanup."""
    return {"name": "replay", "phases": ["replay", "cleanup"], "replay_logs": list(logs)}


class LogSchedule:
    """Each request due at its time in the log from `origin`."""

    def __init__(self, origin: float) -> None:
        self.origin = origin

    def due(self, item: Request) -> float:
        return item.at_s


def _is_missing(error: S3Error) -> bool:
    return error.status == 404 or error.code in ("NoSuchKey", "NotFound")


class Replay:
    phase = Phase.REPLAY

    def __init__(self, spec: PhaseSpec, lanes: Sequence[Lane]) -> None:
        if spec.replay is None:
            raise TypeError("a replay share needs its start (PhaseSpec.replay)")
        self._spec = spec
        self._existing = spec.replay.existing
        self._requests = requests(lanes)
        self.schedule = LogSchedule(time.perf_counter() + spec.replay.start_unix - time.time())
        self._data = ObjectData(spec.seed)
        self._check = ReadCheck(self._data, lambda key: not self._existing)
        self._by_op: dict[str, OpStats] = {}
        self._last: dict[str, asyncio.Future[None]] = {}
        self._missing: list[str] = []

    def operations(self) -> list[Request]:
        return self._requests

    def cost(self, request: Request) -> int:
        return max(request.size, 0) if request.op in ("GET", "PUT") else 0

    def _queue(self, request: Request) -> tuple[set[asyncio.Future[None]], asyncio.Future[None]]:
        """Take the request's place on its keys: the operations before it there, and its own
        completion, which the next one on them waits for."""
        earlier = {self._last[key] for key in request.keys if key in self._last}
        mine: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        for key in request.keys:
            self._last[key] = mine
        return earlier, mine

    def _done(self, request: Request, mine: asyncio.Future[None]) -> None:
        mine.set_result(None)
        for key in request.keys:
            if self._last.get(key) is mine:
                del self._last[key]

    async def perform(self, request: Request, store: ObjectStore, gate: PartGate) -> Done:
        earlier, mine = self._queue(request)
        try:
            for future in earlier:
                await asyncio.shield(future)
            sent = time.perf_counter()
            nbytes, ttfb = await self._send(request, store, gate)
        finally:
            self._done(request, mine)
        stats = self._by_op.setdefault(request.op, OpStats())
        stats.record(nbytes, time.perf_counter() - sent, ttfb)
        return Done(nbytes, ttfb, 1, sent)

    async def _send(
        self, request: Request, store: ObjectStore, gate: PartGate
    ) -> tuple[int, float | None]:
        bucket, key, size = self._spec.bucket, request.keys[0], request.size
        try:
            if request.op == "GET":
                verify = self._spec.verify and size >= 0
                check = functools.partial(self._check.check, key, size) if verify else None
                return await store.get(bucket, key, size, gate, check, self._existing)
            if request.op == "PUT":
                await store.put(bucket, key, size, self._data, gate)
                return size, None
            if request.op == "HEAD":
                await store.stat(bucket, key)
            elif request.op == "DELETE":
                for start in range(0, len(request.keys), MAX_DELETE_BATCH):
                    await store.delete_batch(bucket, request.keys[start : start + MAX_DELETE_BATCH])
            else:
                await store.list_page(bucket, Listing(key), None, None, 1000)
        except S3Error as exc:
            if not (self._existing and _is_missing(exc)):
                raise
            self._missing.append(key)
        return 0, None

    def outcome(self) -> TransferOutcome:
        check = self._check
        return TransferOutcome(
            check.verified,
            check.failures,
            dict(self._by_op),
            dict(check.checks),
            missing=tuple(self._missing),
        )


def transfer(spec: PhaseSpec, keys: Sequence[Lane], limits: ShareLimits, task_id: int) -> Replay:
    return Replay(spec, keys)


def load_plan(run: Run, index: int) -> tuple[ReplayPlan, list[tuple[str, str, int]]]:
    """The settings' logs read and planned: the plan, and what each file was (name, format,
    requests)."""
    settings = run.settings_for(index)
    logs = read_logs(settings.replay_logs)
    for item in logs:
        notes.info(
            "replay: read %s: %s op-log, %d requests", item.name, item.format, len(item.rows)
        )
    target: Target = (
        Mapped([Rewrite.parse(rule) for rule in settings.rewrite])
        if settings.existing
        else OwnNames(run_prefix(settings.prefix, run.run_id))
    )
    made = plan(merged(logs), target, settings.speed, settings.existing)
    return made, [(item.name, item.format, len(item.rows)) for item in logs]


class ReplayStep:
    """The replay as a step of the run: plan, create what the log reads first, start every
    actor at one moment, record the phase with what the replay was."""

    async def run(self, run: Run, index: int) -> None:
        settings = run.settings_for(index)
        made, sources = load_plan(run, index)
        created = 0
        if made.needed and not settings.existing:
            keys = ListedKeys(list(made.needed), list(made.needed.values()))
            spec = spec_of(run, settings, Phase.PUT)
            outcome = await run_recorded(run, spec, keys)
            created = outcome.result.stats.ops
        offsets = await run.executor.clock_offsets()
        lead = LEAD_S + LEAD_PER_OP_S * made.operations
        # Every object a replay of its own touches has a name of the run's (`replay-N`).
        named = 0 if settings.existing else made.objects
        replay = ReplaySpec(
            time.time() + lead, tuple(sorted(offsets.items())), settings.existing, named
        )
        spec = spec_of(run, settings, Phase.REPLAY, replay=replay, existing=settings.existing)
        info = ReplayInfo(
            sources=tuple(sources),
            speed=made.speed,
            planned=made.planned,
            planned_bytes=made.planned_bytes,
            skipped=made.skipped,
            scheduled_per_s=tuple(made.per_second),
            span_s=made.span_s,
            objects=made.objects,
            created=created,
            splits=made.splits,
            clock_offsets=offsets,
            lead_s=lead,
            existing=settings.existing,
        )

        def described(result: PhaseResult) -> PhaseResult:
            return dataclasses.replace(result, replay=info)

        await run_recorded(run, spec, made.lanes, described)


STEP = ReplayStep()
