"""What an engine needs of an object store: the operations it times and counts, whichever
store (this project's S3 client or the boto3 baseline) is underneath."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Protocol

from s3dlio_ray._internal.model.content import ObjectData
from s3dlio_ray._internal.model.keys import Listing
from s3dlio_ray._internal.storage.s3.client import Failed, ObjectInfo, PartGate, Then, in_task

Check = Callable[[memoryview, Mapping[str, str]], None]
"""Called with a GET's body and response headers while the body is still valid (the store may
reuse the buffer after)."""


class ObjectStore(Protocol):
    """The object operations an engine times and counts; each raises S3DlioRayError."""

    endpoint: str
    source_address: str | None
    on_retry: Callable[[bool], None] | None

    def answered_by(self) -> str:
        """The endpoint that answered the calling task's latest request (where its operation
        is counted)."""
        ...

    async def put(
        self, bucket: str, key: str, size: int, data: ObjectData, gate: PartGate
    ) -> None: ...

    async def get(
        self,
        bucket: str,
        key: str,
        size: int,
        gate: PartGate,
        check: Check | None,
        checksum: bool = False,
        span: tuple[int, int] | None = None,
    ) -> tuple[int, float | None]:
        """Read the object of `size` bytes, or only its `span` (offset, length) (with
        `checksum`, asking for its stored checksum; a negative `size`: not known, the first
        range tells it); answer the length read and the time to first byte."""
        ...

    async def stat(self, bucket: str, key: str) -> int:
        """HEAD the object; answer its size."""
        ...

    async def delete(self, bucket: str, key: str) -> None: ...

    async def delete_batch(self, bucket: str, keys: Sequence[str]) -> list[str]:
        """Delete up to 1,000 keys in one request; answer those the store would not delete."""
        ...

    async def list_page(
        self, bucket: str, listing: Listing, after: str | None, token: str | None, max_keys: int
    ) -> tuple[list[ObjectInfo], str | None]:
        """One LIST page of at most `max_keys` of `listing` (from `after`, or continuing at
        `token`): the objects on it and the token of the next page, None at the end."""
        ...

    def quick(self) -> QuickStore | None:
        """The same operations begun without a task per request, where this store has them."""
        ...

    async def aclose(self) -> None: ...


class QuickStore(Protocol):
    """An ObjectStore's operations begun without waiting: each returns at once and later calls
    `then` with what the coroutine of the same name returns, or `failed` with what it raises.
    A store serves small ones from its connections' callbacks (no task, future or await per
    request) and the rest in tasks, as the coroutines."""

    def put_soon(
        self,
        bucket: str,
        key: str,
        size: int,
        data: ObjectData,
        gate: PartGate,
        then: Then,
        failed: Failed,
    ) -> None: ...

    def get_soon(
        self,
        bucket: str,
        key: str,
        size: int,
        gate: PartGate,
        check: Check | None,
        checksum: bool,
        then: Then,
        failed: Failed,
    ) -> None: ...

    def stat_soon(self, bucket: str, key: str, then: Then, failed: Failed) -> None: ...

    def delete_soon(self, bucket: str, key: str, then: Then, failed: Failed) -> None: ...

    def delete_batch_soon(
        self, bucket: str, keys: Sequence[str], then: Then, failed: Failed
    ) -> None: ...

    def list_page_soon(
        self,
        bucket: str,
        listing: Listing,
        after: str | None,
        token: str | None,
        max_keys: int,
        then: Then,
        failed: Failed,
    ) -> None: ...

    def cancel(self) -> None:
        """Give up what was begun and has not ended: its callbacks are not called."""
        ...


class InTasks:
    """A QuickStore over any ObjectStore: each operation its coroutine in a task. How a store
    without a small-request path (or an object too large for it) is driven the same way."""

    def __init__(self, store: ObjectStore) -> None:
        self._store = store
        self._tasks: set[asyncio.Task[None]] = set()

    def _start(self, work: Awaitable[object], then: Then, failed: Failed) -> None:
        in_task(work, then, failed, self._tasks)

    def put_soon(
        self,
        bucket: str,
        key: str,
        size: int,
        data: ObjectData,
        gate: PartGate,
        then: Then,
        failed: Failed,
    ) -> None:
        self._start(self._store.put(bucket, key, size, data, gate), then, failed)

    def get_soon(
        self,
        bucket: str,
        key: str,
        size: int,
        gate: PartGate,
        check: Check | None,
        checksum: bool,
        then: Then,
        failed: Failed,
    ) -> None:
        self._start(self._store.get(bucket, key, size, gate, check, checksum), then, failed)

    def stat_soon(self, bucket: str, key: str, then: Then, failed: Failed) -> None:
        self._start(self._store.stat(bucket, key), then, failed)

    def delete_soon(self, bucket: str, key: str, then: Then, failed: Failed) -> None:
        self._start(self._store.delete(bucket, key), then, failed)

    def delete_batch_soon(
        self, bucket: str, keys: Sequence[str], then: Then, failed: Failed
    ) -> None:
        self._start(self._store.delete_batch(bucket, keys), then, failed)

    def list_page_soon(
        self,
        bucket: str,
        listing: Listing,
        after: str | None,
        token: str | None,
        max_keys: int,
        then: Then,
        failed: Failed,
    ) -> None:
        work = self._store.list_page(bucket, listing, after, token, max_keys)
        self._start(work, then, failed)

    def cancel(self) -> None:
        for task in self._tasks:
            task.cancel()
