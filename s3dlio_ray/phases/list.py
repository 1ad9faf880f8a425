"""LIST: each engine lists its parts of the key space page by page, as warp's list benchmark
does; objects listed per second, and pages (with their latency) under the `page` operation.

A part of this run's key space holds about one page of its objects (keys.listings), so the
parts spread over the actors and run concurrently; existing data is split by its top-level
prefixes. A part's pages follow one another (each needs the previous one's token)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

from s3dlio_ray.control import PhaseControl
from s3dlio_ray.keys import Listing
from s3dlio_ray.phases.base import Done, ObjectStore, PhaseSpec, TransferOutcome, TransferStep
from s3dlio_ray.results import Phase
from s3dlio_ray.s3.client import PartGate
from s3dlio_ray.stats import OpStats


class List:
    phase = Phase.LIST

    def __init__(self, spec: PhaseSpec, parts: Sequence[Listing], control: PhaseControl) -> None:
        self._spec = spec
        self._parts = parts
        self._timed = bool(control.duration_s)
        self._pages = OpStats()

    def operations(self) -> Iterable[Listing]:
        while True:
            yield from self._parts
            if not self._timed or not self._parts:
                return

    def cost(self, part: Listing) -> int:
        return 0

    async def perform(self, part: Listing, store: ObjectStore, gate: PartGate) -> Done:
        listed, token = 0, None
        while True:
            started = time.perf_counter()
            keys, token = await store.list_page(
                self._spec.bucket, part, part.start_after, token, self._spec.page_size
            )
            inside = [k for k in keys if part.end_before is None or k < part.end_before]
            self._pages.record(0, time.perf_counter() - started)
            listed += len(inside)
            if token is None or len(inside) < len(keys):
                return Done(objects=listed)

    def outcome(self) -> TransferOutcome:
        return TransferOutcome(by_op={"page": self._pages})


def transfer(
    spec: PhaseSpec, parts: Sequence[Listing], control: PhaseControl, task_id: int
) -> List:
    return List(spec, parts, control)


STEP = TransferStep(Phase.LIST)
