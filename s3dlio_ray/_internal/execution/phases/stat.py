"""STAT: HEAD each key of the share (`epochs` times, or again and again when timed), as warp's
stat benchmark does; a size other than the one the run wrote (or the listing gave) fails."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from s3dlio_ray._internal.execution.admission import ShareLimits
from s3dlio_ray._internal.execution.phases.step import TransferStep
from s3dlio_ray._internal.execution.phases.transfer import Done, PhaseSpec, TransferOutcome
from s3dlio_ray._internal.model.content import VerificationError
from s3dlio_ray._internal.model.keys import Sized, repeated
from s3dlio_ray._internal.model.vocabulary import Phase
from s3dlio_ray._internal.storage.object_store import ObjectStore, QuickStore
from s3dlio_ray._internal.storage.s3.client import Failed, PartGate


class Stat:
    phase = Phase.STAT

    def __init__(self, spec: PhaseSpec, keys: Sequence[str], limits: ShareLimits) -> None:
        self._spec = spec
        self._objects = repeated(keys, spec.sizes, None if limits.duration_s else spec.epochs)

    def operations(self) -> Iterable[Sized]:
        return self._objects

    def cost(self, item: Sized) -> int:
        return 0

    async def perform(self, item: Sized, store: ObjectStore, gate: PartGate) -> Done:
        return _checked(item, await store.stat(self._spec.bucket, item.key))

    def begin(
        self,
        item: Sized,
        store: QuickStore,
        gate: PartGate,
        done: Callable[[Done], None],
        failed: Failed,
    ) -> None:
        store.stat_soon(
            self._spec.bucket, item.key, lambda size: done(_checked(item, size)), failed
        )

    def outcome(self) -> TransferOutcome:
        return TransferOutcome()


def _checked(item: Sized, size: int) -> Done:
    """A HEAD's answer `size` as expected for `item`, or a VerificationError."""
    if item.size >= 0 and size != item.size:
        raise VerificationError(f"{item.key}: HEAD says {size} bytes, expected {item.size}")
    return Done()


def transfer(spec: PhaseSpec, keys: Sequence[str], limits: ShareLimits, task_id: int) -> Stat:
    return Stat(spec, keys, limits)


STEP = TransferStep(Phase.STAT)
