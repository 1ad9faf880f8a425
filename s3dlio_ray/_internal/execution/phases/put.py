"""PUT: write each key of the share once with deterministic content (or, timed, go on with new
keys past the share's own); objects above the part size go up as multipart uploads. A
checkpoint's shards go up the same way, their sizes given with their keys."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from s3dlio_ray._internal.execution.admission import ShareLimits
from s3dlio_ray._internal.execution.phases.step import TransferStep
from s3dlio_ray._internal.execution.phases.transfer import Done, PhaseSpec, TransferOutcome
from s3dlio_ray._internal.model.content import ObjectData
from s3dlio_ray._internal.model.keys import KeyRange, Sized, with_sizes
from s3dlio_ray._internal.model.vocabulary import Phase
from s3dlio_ray._internal.storage.object_store import ObjectStore, QuickStore
from s3dlio_ray._internal.storage.s3.client import Failed, PartGate


class Put:
    def __init__(self, spec: PhaseSpec, keys: Sequence[str], limits: ShareLimits) -> None:
        self.phase = spec.phase
        self._spec = spec
        self._objects = with_sizes(keys, spec.sizes)
        if limits.duration_s:
            if not isinstance(keys, KeyRange):
                raise TypeError("a timed PUT writes a KeyRange's later rounds; got plain keys")
            self._objects = with_sizes(keys.cycled(), spec.sizes)
        self._data = ObjectData(spec.seed)

    def operations(self) -> Iterable[Sized]:
        return self._objects

    def cost(self, item: Sized) -> int:
        return item.size

    async def perform(self, item: Sized, store: ObjectStore, gate: PartGate) -> Done:
        await store.put(self._spec.bucket, item.key, item.size, self._data, gate)
        return Done(item.size)

    def begin(
        self,
        item: Sized,
        store: QuickStore,
        gate: PartGate,
        done: Callable[[Done], None],
        failed: Failed,
    ) -> None:
        stored = Done(item.size)
        bucket = self._spec.bucket
        store.put_soon(
            bucket, item.key, item.size, self._data, gate, lambda _: done(stored), failed
        )

    def outcome(self) -> TransferOutcome:
        return TransferOutcome()


def transfer(spec: PhaseSpec, keys: Sequence[str], limits: ShareLimits, task_id: int) -> Put:
    return Put(spec, keys, limits)


STEP = TransferStep(Phase.PUT)
