"""GET: read each key of the share (`epochs` times, or again and again when timed) and check
it: byte for byte against the content this run's seed generates, or, for existing data, against
the checksum or ETag the store keeps (see checks.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from s3dlio_ray._internal.execution.admission import ShareLimits
from s3dlio_ray._internal.execution.phases.step import TransferStep
from s3dlio_ray._internal.execution.phases.transfer import Done, PhaseSpec, TransferOutcome
from s3dlio_ray._internal.model.checks import ReadCheck
from s3dlio_ray._internal.model.content import ObjectData
from s3dlio_ray._internal.model.keys import Sized, repeated
from s3dlio_ray._internal.model.vocabulary import Phase
from s3dlio_ray._internal.storage.object_store import Check, ObjectStore, QuickStore
from s3dlio_ray._internal.storage.s3.client import Failed, PartGate


class Get:
    def __init__(self, spec: PhaseSpec, keys: Sequence[str], limits: ShareLimits) -> None:
        self.phase = spec.phase
        self._spec = spec
        self._objects = repeated(keys, spec.sizes, None if limits.duration_s else spec.epochs)
        self._check = ReadCheck(ObjectData(spec.seed), spec.generated)

    def operations(self) -> Iterable[Sized]:
        return self._objects

    def cost(self, item: Sized) -> int:
        return max(item.size, 0)

    async def perform(self, item: Sized, store: ObjectStore, gate: PartGate) -> Done:
        key, size = item
        spec = self._spec
        nbytes, ttfb = await store.get(
            spec.bucket, key, size, gate, self._checked(item), spec.existing
        )
        return Done(nbytes, ttfb)

    def begin(
        self,
        item: Sized,
        store: QuickStore,
        gate: PartGate,
        done: Callable[[Done], None],
        failed: Failed,
    ) -> None:
        spec = self._spec
        check = self._checked(item)
        store.get_soon(
            spec.bucket,
            item.key,
            item.size,
            gate,
            check,
            spec.existing,
            lambda read: done(Done(*read)),
            failed,
        )

    def _checked(self, item: Sized) -> Check | None:
        """How the object read for `item` is checked, or None without verification."""
        if not self._spec.verify:
            return None
        key, size = item
        return lambda body, headers: self._check.check(key, size, body, headers)

    def outcome(self) -> TransferOutcome:
        check = self._check
        return TransferOutcome(check.verified, check.failures, checks=dict(check.checks))


def transfer(spec: PhaseSpec, keys: Sequence[str], limits: ShareLimits, task_id: int) -> Get:
    return Get(spec, keys, limits)


STEP = TransferStep(Phase.GET)
