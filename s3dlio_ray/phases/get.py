"""GET: read each key of the share (again and again when timed), verifying every byte against
the deterministic content unless `verify` is off."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from s3dlio_ray.control import PhaseControl
from s3dlio_ray.keys import Sized, repeated
from s3dlio_ray.phases.base import ObjectStore, PhaseSpec, TransferOutcome, TransferStep
from s3dlio_ray.results import Phase
from s3dlio_ray.s3.client import PartGate
from s3dlio_ray.workload import ObjectData, VerifyTally


class Get:
    phase = Phase.GET

    def __init__(self, spec: PhaseSpec, keys: Sequence[str], control: PhaseControl) -> None:
        self._spec = spec
        self._objects = repeated(keys, spec.sizes, None if control.duration_s else 1)
        self._tally = VerifyTally(ObjectData(spec.seed))

    def operations(self) -> Iterable[Sized]:
        return self._objects

    def cost(self, item: Sized) -> int:
        return item.size

    async def perform(
        self, item: Sized, store: ObjectStore, gate: PartGate
    ) -> tuple[int, float | None]:
        key, size = item
        check = (lambda body: self._tally.check(key, body, size)) if self._spec.verify else None
        return await store.get(self._spec.bucket, key, size, gate, check)

    def outcome(self) -> TransferOutcome:
        return TransferOutcome(self._tally.verified, self._tally.failures)


def transfer(spec: PhaseSpec, keys: Sequence[str], control: PhaseControl, task_id: int) -> Get:
    return Get(spec, keys, control)


STEP = TransferStep(Phase.GET)
