"""MIXED: GET/PUT/STAT/DELETE chosen by weight for the phase's duration over a pool of keys.

New objects join the pool and a deleted key leaves it; a key in use is not picked again until
its request ends, so a GET never races a DELETE of the same key. Each operation is counted on
its own as well as in the phase's total.
"""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Callable, Iterator, Sequence
from typing import NamedTuple

from s3dlio_ray._internal.execution.admission import ShareLimits
from s3dlio_ray._internal.execution.phases.step import TransferStep
from s3dlio_ray._internal.execution.phases.transfer import Done, PhaseSpec, TransferOutcome
from s3dlio_ray._internal.model.checks import ReadCheck
from s3dlio_ray._internal.model.content import ObjectData
from s3dlio_ray._internal.model.errors import ConfigError
from s3dlio_ray._internal.model.keys import ListedKeys, Sized
from s3dlio_ray._internal.model.sizes import ObjectSizes
from s3dlio_ray._internal.model.stats import OpStats
from s3dlio_ray._internal.model.vocabulary import Phase
from s3dlio_ray._internal.storage.object_store import Check, ObjectStore, QuickStore
from s3dlio_ray._internal.storage.s3.client import Failed, PartGate


class KeyPool:
    """Keys to pick from at random: the share's (never copied, so a pool over ten million keys
    costs what one over ten does) less those deleted, plus those the phase wrote. What it holds
    grows with the operations done, not with the key space."""

    def __init__(self, base: Sequence[str], sizes: ObjectSizes) -> None:
        self._base = base
        self._sizes = sizes
        self._gone: set[str] = set()
        self._added: list[str] = []
        self._index: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._base) - len(self._gone) + len(self._added)

    def choice(self, rng: random.Random) -> Sized | None:
        """A key at random, or None when the draw hit a deleted one (draw again)."""
        base = len(self._base)
        drawn = rng.randrange(base + len(self._added))
        if drawn >= base:
            key = self._added[drawn - base]
            return Sized(key, self._sizes.of(key))
        key = self._base[drawn]
        if key in self._gone:
            return None
        if isinstance(self._base, ListedKeys):
            return Sized(key, self._base.sizes[drawn])
        return Sized(key, self._sizes.of(key))

    def add(self, key: str) -> None:
        """A key the phase wrote (new: the phase never writes a key of the share)."""
        if key not in self._index:
            self._index[key] = len(self._added)
            self._added.append(key)

    def discard(self, key: str) -> None:
        """A key the phase deleted: one it picked, so it is in the share or among the added."""
        index = self._index.pop(key, None)
        if index is None:
            self._gone.add(key)
            return
        last = self._added.pop()
        if index < len(self._added):
            self._added[index] = last
            self._index[last] = index


class MixedOp(NamedTuple):
    """One operation of a mixed phase; a failure is listed under "OP KEY"."""

    op: str
    key: str
    size: int

    def __str__(self) -> str:
        return f"{self.op} {self.key}"


class Mixed:
    phase = Phase.MIXED

    def __init__(
        self, spec: PhaseSpec, keys: Sequence[str], limits: ShareLimits, task_id: int
    ) -> None:
        if not limits.duration_s:
            raise ConfigError("phases: mixed runs for a time: set duration_s (--duration SECONDS)")
        self._spec = spec
        self._rng = random.Random(spec.seed + task_id)
        self._ops = [op for op, _ in spec.mix]
        self._cumulative = list(itertools.accumulate(weight for _, weight in spec.mix))
        self._pool, self._in_use = KeyPool(keys, spec.sizes), set[str]()
        self._new_keys = f"{spec.key_prefix}mixed-{task_id}-"
        self._counter = itertools.count()
        self._by_op = {op: OpStats() for op in self._ops}
        self._data = ObjectData(spec.seed)
        self._check = ReadCheck(self._data, spec.generated)

    def _pick(self, op: str) -> Sized | None:
        """A key for `op` not in use; never one of existing data for a delete."""
        for _ in range(8):
            if not self._pool:
                return None
            item = self._pool.choice(self._rng)
            if item is None or item.key in self._in_use:
                continue
            if op == "delete" and not self._spec.generated(item.key):
                continue
            self._in_use.add(item.key)
            return item
        return None

    def operations(self) -> Iterator[MixedOp]:
        while True:
            op = self._rng.choices(self._ops, cum_weights=self._cumulative)[0]
            item = None if op == "put" else self._pick(op)
            if item is None:
                key = f"{self._new_keys}{next(self._counter):08d}"
                op, item = "put", Sized(key, self._spec.sizes.of(key))
            yield MixedOp(op, *item)

    def cost(self, operation: MixedOp) -> int:
        return max(operation.size, 0) if operation.op in ("put", "get") else 0

    async def perform(self, operation: MixedOp, store: ObjectStore, gate: PartGate) -> Done:
        op, key, size = operation
        bucket = self._spec.bucket
        started = time.perf_counter()
        try:
            nbytes, ttfb = 0, None
            if op == "put":
                await store.put(bucket, key, size, self._data, gate)
                nbytes = size
            elif op == "get":
                existing = not self._spec.generated(key)
                nbytes, ttfb = await store.get(
                    bucket, key, size, gate, self._checked(key, size), existing
                )
            elif op == "stat":
                await store.stat(bucket, key)
            else:
                self._pool.discard(key)
                await store.delete(bucket, key)
        finally:
            self._in_use.discard(key)
        return self._ended(op, key, nbytes, ttfb, started)

    def begin(
        self,
        operation: MixedOp,
        store: QuickStore,
        gate: PartGate,
        done: Callable[[Done], None],
        failed: Failed,
    ) -> None:
        op, key, size = operation
        bucket = self._spec.bucket
        started = time.perf_counter()

        def ended(nbytes: int, ttfb: float | None) -> None:
            self._in_use.discard(key)
            done(self._ended(op, key, nbytes, ttfb, started))

        def lost(exc: Exception) -> None:
            self._in_use.discard(key)
            failed(exc)

        if op == "put":
            store.put_soon(bucket, key, size, self._data, gate, lambda _: ended(size, None), lost)
        elif op == "get":
            existing = not self._spec.generated(key)
            check = self._checked(key, size)
            store.get_soon(bucket, key, size, gate, check, existing, lambda r: ended(*r), lost)
        elif op == "stat":
            store.stat_soon(bucket, key, lambda _: ended(0, None), lost)
        else:
            self._pool.discard(key)
            store.delete_soon(bucket, key, lambda _: ended(0, None), lost)

    def _checked(self, key: str, size: int) -> Check | None:
        """How a GET of `key` is checked, or None without verification."""
        if not self._spec.verify:
            return None
        return lambda body, headers: self._check.check(key, size, body, headers)

    def _ended(self, op: str, key: str, nbytes: int, ttfb: float | None, started: float) -> Done:
        """An operation that succeeded, counted under its kind (a new object joins the pool)."""
        if op == "put":
            self._pool.add(key)
        self._by_op[op].record(nbytes, time.perf_counter() - started, ttfb)
        return Done(nbytes, ttfb)

    def outcome(self) -> TransferOutcome:
        check = self._check
        return TransferOutcome(check.verified, check.failures, self._by_op, dict(check.checks))


def transfer(spec: PhaseSpec, keys: Sequence[str], limits: ShareLimits, task_id: int) -> Mixed:
    return Mixed(spec, keys, limits, task_id)


STEP = TransferStep(Phase.MIXED)
