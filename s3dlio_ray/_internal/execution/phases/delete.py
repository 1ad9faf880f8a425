"""DELETE: remove the share's keys with DeleteObjects, `delete_batch` (at most 1,000) keys a
request, as warp's delete benchmark does; objects deleted per second. Keys the store would not
delete are listed as failed. On existing data it runs only with allow_delete_existing."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence

from s3dlio_ray._internal.execution.admission import ShareLimits
from s3dlio_ray._internal.execution.phases.step import TransferStep
from s3dlio_ray._internal.execution.phases.transfer import Done, PhaseSpec, TransferOutcome
from s3dlio_ray._internal.model.vocabulary import Phase
from s3dlio_ray._internal.storage.object_store import ObjectStore, QuickStore
from s3dlio_ray._internal.storage.s3.client import Failed, PartGate


class Batch(tuple[str, ...]):
    """Keys one DeleteObjects request removes; a failure is listed under its first key."""

    def __str__(self) -> str:
        return f"DeleteObjects of {len(self)} keys from {self[0]}"


class Delete:
    phase = Phase.DELETE

    def __init__(self, spec: PhaseSpec, keys: Sequence[str], limits: ShareLimits) -> None:
        self._spec = spec
        self._keys = keys
        self._failed: dict[str, str] = {}

    def operations(self) -> Iterator[Batch]:
        keys = iter(self._keys)
        while batch := Batch(itertools.islice(keys, self._spec.delete_batch)):
            yield batch

    def cost(self, batch: Batch) -> int:
        return 0

    async def perform(self, batch: Batch, store: ObjectStore, gate: PartGate) -> Done:
        return self._deleted(batch, await store.delete_batch(self._spec.bucket, batch))

    def begin(
        self,
        batch: Batch,
        store: QuickStore,
        gate: PartGate,
        done: Callable[[Done], None],
        failed: Failed,
    ) -> None:
        deleted = self._deleted
        store.delete_batch_soon(
            self._spec.bucket, batch, lambda refused: done(deleted(batch, refused)), failed
        )

    def _deleted(self, batch: Batch, refused: list[str]) -> Done:
        """A batch done; the keys the store would not delete listed as failed."""
        for key in refused:
            self._failed[key] = "DeleteObjects: the store did not delete it"
        return Done(objects=len(batch) - len(refused))

    def outcome(self) -> TransferOutcome:
        return TransferOutcome(failed=dict(self._failed))


def transfer(spec: PhaseSpec, keys: Sequence[str], limits: ShareLimits, task_id: int) -> Delete:
    return Delete(spec, keys, limits)


STEP = TransferStep(Phase.DELETE)
