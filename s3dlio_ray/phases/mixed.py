"""MIXED: GET/PUT/STAT/DELETE chosen by weight for the phase's duration over a pool of keys.

New objects join the pool and a deleted key leaves it; a key in use is not picked again until
its request ends, so a GET never races a DELETE of the same key. Each operation is counted on
its own as well as in the phase's total.
"""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import NamedTuple

from s3dlio_ray.control import PhaseControl
from s3dlio_ray.errors import ConfigError
from s3dlio_ray.phases.base import ObjectStore, PhaseSpec, TransferOutcome, TransferStep
from s3dlio_ray.results import Phase
from s3dlio_ray.s3.client import PartGate
from s3dlio_ray.stats import OpStats
from s3dlio_ray.workload import ObjectData, VerifyTally


class KeyPool:
    """Keys to pick from at random, with O(1) add and discard (swap with the last)."""

    def __init__(self, keys: Iterable[str]) -> None:
        self._keys = list(keys)
        self._index = {key: i for i, key in enumerate(self._keys)}

    def __len__(self) -> int:
        return len(self._keys)

    def choice(self, rng: random.Random) -> str:
        return self._keys[rng.randrange(len(self._keys))]

    def add(self, key: str) -> None:
        if key not in self._index:
            self._index[key] = len(self._keys)
            self._keys.append(key)

    def discard(self, key: str) -> None:
        index = self._index.pop(key, None)
        if index is None:
            return
        last = self._keys.pop()
        if index < len(self._keys):
            self._keys[index] = last
            self._index[last] = index


class MixedOp(NamedTuple):
    """One operation of a mixed phase; a failure is listed under "OP KEY"."""

    op: str
    key: str

    def __str__(self) -> str:
        return f"{self.op} {self.key}"


class Mixed:
    phase = Phase.MIXED

    def __init__(
        self, spec: PhaseSpec, keys: Sequence[str], control: PhaseControl, task_id: int
    ) -> None:
        if not control.duration_s:
            raise ConfigError("phases: mixed runs for a time: set duration_s (--duration SECONDS)")
        self._spec = spec
        self._rng = random.Random(spec.seed + task_id)
        self._ops = [op for op, _ in spec.mix]
        self._cumulative = list(itertools.accumulate(weight for _, weight in spec.mix))
        self._pool, self._in_use = KeyPool(keys), set[str]()
        self._new_keys = f"{spec.key_prefix}mixed-{task_id}-"
        self._counter = itertools.count()
        self._by_op = {op: OpStats() for op in self._ops}
        self._tally = VerifyTally(ObjectData(spec.seed))
        self._data = ObjectData(spec.seed)

    def _pick(self) -> str | None:
        for _ in range(8):
            if not self._pool:
                return None
            key = self._pool.choice(self._rng)
            if key not in self._in_use:
                self._in_use.add(key)
                return key
        return None

    def operations(self) -> Iterator[MixedOp]:
        while True:
            op = self._rng.choices(self._ops, cum_weights=self._cumulative)[0]
            key = None if op == "put" else self._pick()
            if key is None:
                op, key = "put", f"{self._new_keys}{next(self._counter):08d}"
            yield MixedOp(op, key)

    def cost(self, operation: MixedOp) -> int:
        return self._spec.sizes.of(operation.key) if operation.op in ("put", "get") else 0

    async def perform(
        self, operation: MixedOp, store: ObjectStore, gate: PartGate
    ) -> tuple[int, float | None]:
        op, key = operation
        bucket, size = self._spec.bucket, self._spec.sizes.of(key)
        started = time.perf_counter()
        try:
            nbytes, ttfb = 0, None
            if op == "put":
                await store.put(bucket, key, size, self._data, gate)
                nbytes = size
            elif op == "get":
                check = (
                    (lambda body: self._tally.check(key, body, size)) if self._spec.verify else None
                )
                nbytes, ttfb = await store.get(bucket, key, size, gate, check)
            elif op == "stat":
                await store.stat(bucket, key)
            else:
                self._pool.discard(key)
                await store.delete(bucket, key)
        finally:
            self._in_use.discard(key)
        if op == "put":
            self._pool.add(key)
        self._by_op[op].record(nbytes, time.perf_counter() - started, ttfb)
        return nbytes, ttfb

    def outcome(self) -> TransferOutcome:
        return TransferOutcome(self._tally.verified, self._tally.failures, self._by_op)


def transfer(spec: PhaseSpec, keys: Sequence[str], control: PhaseControl, task_id: int) -> Mixed:
    return Mixed(spec, keys, control, task_id)


STEP = TransferStep(Phase.MIXED)
