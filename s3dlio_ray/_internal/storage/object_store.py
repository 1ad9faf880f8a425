"""What an engine needs of an object store: the operations it times and counts, whichever
store (this project's S3 client or the boto3 baseline) is underneath."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from s3dlio_ray._internal.model.content import ObjectData
from s3dlio_ray._internal.model.keys import Listing
from s3dlio_ray._internal.storage.s3.client import ObjectInfo, PartGate

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

    async def aclose(self) -> None: ...
