"""LIST: each engine lists its parts of the key space page by page, as warp's list benchmark
does; objects listed per second, and pages (with their latency) under the `page` operation.

A part of this run's key space holds about one page of its objects (keys.listings), so the
parts spread over the actors and run concurrently; existing data is split by its top-level
prefixes. A part's pages follow one another (each needs the previous one's token). A collecting
LIST (the listing of existing data the reading phases use) keeps every name and size it finds."""

from __future__ import annotations

import time
from array import array
from collections.abc import Callable, Iterable, Sequence

from s3dlio_ray._internal.execution.admission import ShareLimits
from s3dlio_ray._internal.execution.phases.step import TransferStep
from s3dlio_ray._internal.execution.phases.transfer import Done, PhaseSpec, TransferOutcome
from s3dlio_ray._internal.model.keys import ListedKeys, Listing
from s3dlio_ray._internal.model.stats import OpStats
from s3dlio_ray._internal.model.vocabulary import Phase
from s3dlio_ray._internal.storage.object_store import ObjectStore, QuickStore
from s3dlio_ray._internal.storage.s3.client import Failed, ObjectInfo, PartGate


class List:
    phase = Phase.LIST

    def __init__(self, spec: PhaseSpec, parts: Sequence[Listing], limits: ShareLimits) -> None:
        self._spec = spec
        self._parts = parts
        self._timed = bool(limits.duration_s)
        self._pages = OpStats()
        self._keys: list[str] = []
        self._sizes = array("q")

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
            found, token = await store.list_page(
                self._spec.bucket, part, part.start_after, token, self._spec.page_size
            )
            inside, last = self._page(part, found, token, started)
            listed += inside
            if last:
                return Done(objects=listed)

    def begin(
        self,
        part: Listing,
        store: QuickStore,
        gate: PartGate,
        done: Callable[[Done], None],
        failed: Failed,
    ) -> None:
        """The listing's pages one after another, each asked for from the callback that read
        the one before."""
        listed = 0

        def ask(token: str | None) -> None:
            started = time.perf_counter()

            def read(answer: tuple[list[ObjectInfo], str | None]) -> None:
                nonlocal listed
                found, token = answer
                inside, last = self._page(part, found, token, started)
                listed += inside
                if last:
                    done(Done(objects=listed))
                else:
                    ask(token)

            bucket, size = self._spec.bucket, self._spec.page_size
            store.list_page_soon(bucket, part, part.start_after, token, size, read, failed)

        ask(None)

    def _page(
        self, part: Listing, found: list[ObjectInfo], token: str | None, started: float
    ) -> tuple[int, bool]:
        """A page read: how many of its objects are inside the listing (kept when collected),
        and whether it is the listing's last."""
        end = part.end_before
        inside = [o for o in found if end is None or o.key < end]
        self._pages.record(0, time.perf_counter() - started)
        if self._spec.collect:
            self._keys += (o.key for o in inside)
            self._sizes.extend(o.size for o in inside)
        return len(inside), token is None or len(inside) < len(found)

    def outcome(self) -> TransferOutcome:
        listed = ListedKeys(self._keys, self._sizes) if self._spec.collect else None
        return TransferOutcome(by_op={"page": self._pages}, listed=listed)


def transfer(spec: PhaseSpec, parts: Sequence[Listing], limits: ShareLimits, task_id: int) -> List:
    return List(spec, parts, limits)


STEP = TransferStep(Phase.LIST)
