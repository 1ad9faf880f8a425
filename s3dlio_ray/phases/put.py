"""PUT: write each key of the share once with deterministic content (or, timed, go on with new
keys past the share's own); objects above the part size go up as multipart uploads."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from s3dlio_ray.control import PhaseControl
from s3dlio_ray.keys import KeyRange
from s3dlio_ray.phases.base import Done, ObjectStore, PhaseSpec, TransferOutcome, TransferStep
from s3dlio_ray.results import Phase
from s3dlio_ray.s3.client import PartGate
from s3dlio_ray.workload import ObjectData


class Put:
    phase = Phase.PUT

    def __init__(self, spec: PhaseSpec, keys: Sequence[str], control: PhaseControl) -> None:
        self._spec = spec
        self._keys: Iterable[str] = keys
        if control.duration_s:
            if not isinstance(keys, KeyRange):
                raise TypeError("a timed PUT writes a KeyRange's later rounds; got plain keys")
            self._keys = keys.cycled()
        self._data = ObjectData(spec.seed)

    def operations(self) -> Iterable[str]:
        return self._keys

    def cost(self, key: str) -> int:
        return self._spec.sizes.of(key)

    async def perform(self, key: str, store: ObjectStore, gate: PartGate) -> Done:
        size = self._spec.sizes.of(key)
        await store.put(self._spec.bucket, key, size, self._data, gate)
        return Done(size)

    def outcome(self) -> TransferOutcome:
        return TransferOutcome()


def transfer(spec: PhaseSpec, keys: Sequence[str], control: PhaseControl, task_id: int) -> Put:
    return Put(spec, keys, control)


STEP = TransferStep(Phase.PUT)
