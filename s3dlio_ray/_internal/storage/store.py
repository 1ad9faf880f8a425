"""This project's object store for the engine: the S3 client, multipart above the part size,
ranged GETs into pooled buffers."""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

from s3dlio_ray._internal.model import crc
from s3dlio_ray._internal.model.checks import CHECKSUM_MODE
from s3dlio_ray._internal.model.content import ObjectData
from s3dlio_ray._internal.model.keys import Listing
from s3dlio_ray._internal.storage.files import FileError, SourceFile, TargetFile
from s3dlio_ray._internal.storage.object_store import Check, Failed, InTasks, Then
from s3dlio_ray._internal.storage.oplog import OpLog
from s3dlio_ray._internal.storage.s3.client import (
    DELETE_QUERY,
    MAX_DELETE_BATCH,
    ObjectInfo,
    PartGate,
    S3Client,
    answered_by,
    delete_failures,
    delete_request,
    hand_on,
    in_parts,
    list_page,
    list_query,
)
from s3dlio_ray._internal.storage.s3.transport import Response
from s3dlio_ray._internal.tuning.parts import (
    DEFAULT_FAST_PATH_MAX,
    calculate_optimal_part_size,
    part_ranges,
)


class UploadedFile(NamedTuple):
    """A file uploaded: its CRC32, and for a multipart upload the composite checksum a store
    keeping its parts' checksums answers for it (`crc.composite`)."""

    crc32: int
    composite: str | None = None

    def kept_as(self, stored: str) -> bool:
        """Whether `stored`, the checksum the store answers for the object, is this file's:
        whole-object, or composite for a multipart upload (`...-N`; moto leaves out `-N`)."""
        if stored == crc.header(self.crc32):
            return True
        if self.composite is None:
            return False
        return stored in (self.composite, self.composite.rsplit("-", 1)[0])


class BufferPool:
    """Reuses GET buffers so a phase allocates (and page-faults) about one per slot.

    Capacities are rounded up to one of 8 steps per power of two (at most 12.5% spare; a fixed
    10 MiB is exact), so objects of a size distribution share buffers. At most `keep_bytes` wait
    in the pool; beyond that a released buffer is dropped, so a wide distribution cannot hold a
    buffer of every size.
    """

    def __init__(self, keep_bytes: int = 512 * 1024 * 1024) -> None:
        self._free: dict[int, list[bytearray]] = {}
        self._keep = keep_bytes
        self.pooled_bytes = 0

    @staticmethod
    def capacity(size: int) -> int:
        if size <= 8:
            return max(size, 1)
        step = 1 << (size.bit_length() - 4)
        return -(-size // step) * step

    def acquire(self, size: int) -> bytearray:
        capacity = self.capacity(size)
        free = self._free.get(capacity)
        if free:
            self.pooled_bytes -= capacity
            return free.pop()
        return bytearray(capacity)

    def release(self, buffer: bytearray) -> None:
        if self.pooled_bytes + len(buffer) > self._keep:
            return
        self.pooled_bytes += len(buffer)
        self._free.setdefault(len(buffer), []).append(buffer)


class S3Store:
    """PUT, GET, STAT and DELETE on one S3Client; `op_log` records every HTTP request.

    Two paths behind the one interface: the coroutines (`put`, `get`, ...), and the same
    operations begun without a task (`quick()`, the engine's choice for the phases that can):
    objects up to `fast_path_max` bytes (None: that path off) and metadata requests are sent
    from the connections' callbacks over HTTP/1.1, the rest run as the coroutines in tasks.
    """

    def __init__(
        self,
        client: S3Client,
        part_size: int,
        op_log: OpLog | None = None,
        keep_buffers: int | None = None,
        fast_path_max: int | None = DEFAULT_FAST_PATH_MAX,
    ) -> None:
        self.client = client
        self.endpoint = client.endpoint_url
        self.source_address = client.options.bind_address
        self.on_retry: Callable[[bool], None] | None = None
        self._part_size = part_size
        self._fast_max = None if fast_path_max is None else min(fast_path_max, part_size)
        self._tasks = InTasks(self)
        self._buffers = BufferPool() if keep_buffers is None else BufferPool(keep_buffers)
        self._op_log = op_log
        if op_log is not None:
            client.on_request = op_log.record
        client.on_retry = self._retried

    def answered_by(self) -> str:
        return answered_by.get() or self.endpoint

    def _retried(self, operation: str, throttled: bool) -> None:
        if self.on_retry is not None:
            self.on_retry(throttled)

    async def put(self, bucket: str, key: str, size: int, data: ObjectData, gate: PartGate) -> None:
        part_size = calculate_optimal_part_size(size, self._part_size)
        if size > part_size:
            await self.client.put_object_multipart(
                bucket, key, size, lambda o, n: data.segments(key, o, n), part_size, gate
            )
        else:
            await self.client.put_object(bucket, key, data.segments(key, 0, size))

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
        part_size = calculate_optimal_part_size(max(size, 0), self._part_size)
        if span == (0, size):
            span = None
        wanted = size if span is None else span[1]
        buffer = self._buffers.acquire(max(wanted, 0))
        extra = CHECKSUM_MODE if checksum else None
        try:
            if wanted > part_size or wanted < 0:
                result = await self.client.get_object_ranged(
                    bucket,
                    key,
                    part_size,
                    lambda n: buffer if n <= len(buffer) else bytearray(n),
                    gate,
                    extra,
                    span,
                )
            else:
                byte_range = None if span is None else (span[0], span[0] + span[1] - 1)
                result = await self.client.get_object(
                    bucket, key, into=buffer, byte_range=byte_range, extra=extra
                )
            if check is not None:
                check(result.body, result.headers)
            return len(result.body), result.ttfb_s
        finally:
            self._buffers.release(buffer)

    async def upload(
        self, bucket: str, key: str, source: SourceFile, gate: PartGate, send_crc32: bool
    ) -> UploadedFile:
        """Upload the file, multipart above the part size, its parts read straight into the
        buffers sent; answer its CRC32 (with `send_crc32` also sent, per part, for the store
        to check and keep)."""
        size = source.size
        part_size = calculate_optimal_part_size(size, self._part_size)
        if size > part_size:

            async def part(offset: int, length: int) -> list[bytearray]:
                return [await source.read(offset, length)]

            uploaded = await self.client.put_object_multipart(
                bucket, key, size, part, part_size, gate, crc32=True, send_crc32=send_crc32
            )
            assert uploaded.crc32 is not None and uploaded.composite is not None
            return UploadedFile(uploaded.crc32, uploaded.composite)
        body = await source.read(0, size)
        checksum = zlib.crc32(body)
        await self.client.put_object(bucket, key, [body], checksum if send_crc32 else None)
        return UploadedFile(checksum)

    async def stored_crc32(self, bucket: str, key: str) -> str | None:
        return await self.client.stored_crc32(bucket, key)

    async def download(
        self, bucket: str, key: str, size: int, target: TargetFile, gate: PartGate
    ) -> tuple[int, Mapping[str, str]]:
        """GET the object into the file, as concurrent ranges above the part size, each written
        from the buffer it filled; answer its CRC32 and the response headers of a single GET
        (where the store's own full-object checksum is)."""
        part_size = calculate_optimal_part_size(size, self._part_size)
        ranges = part_ranges(size, part_size)
        crcs = [0] * len(ranges)
        headers: dict[str, str] = {}

        async def one(index: int, offset: int, length: int) -> None:
            buffer = self._buffers.acquire(length)
            try:
                byte_range = (offset, offset + length - 1) if len(ranges) > 1 else None
                extra = CHECKSUM_MODE if byte_range is None else None
                result = await self.client.get_object(bucket, key, buffer, byte_range, extra)
                if len(result.body) != length:
                    raise FileError(
                        f"s3://{bucket}/{key}: {len(result.body)} bytes where the listing said "
                        f"{length}: it changed while it was copied"
                    )
                crcs[index] = zlib.crc32(result.body)
                if byte_range is None:
                    headers.update(result.headers)
                await target.write(offset, result.body)
            finally:
                self._buffers.release(buffer)

        await in_parts(ranges, gate, one)
        return crc.of(crcs, ranges), headers

    async def stat(self, bucket: str, key: str) -> int:
        return (await self.client.head_object(bucket, key)).size

    async def delete(self, bucket: str, key: str) -> None:
        await self.client.delete_objects(bucket, [key])

    async def delete_batch(self, bucket: str, keys: Sequence[str]) -> list[str]:
        _, failed = await self.client.delete_objects(bucket, keys)
        return failed

    async def list_page(
        self, bucket: str, listing: Listing, after: str | None, token: str | None, max_keys: int
    ) -> tuple[list[ObjectInfo], str | None]:
        page = await self.client.list_objects_page(
            bucket,
            listing.prefix,
            token,
            max_keys,
            after,
            "/" if listing.delimiter else None,
        )
        return page.objects, page.next_token

    def quick(self) -> S3Store | None:
        """This store, begun without waiting, unless its small-request path is off (or its
        client speaks HTTP/2, which has its own streams)."""
        return None if self._fast_max is None or self.client.options.http2 else self

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
        if not self._small(size):
            self._tasks.put_soon(bucket, key, size, data, gate, then, failed)
            return
        self.client.send_soon(
            lambda response: then(None),
            failed,
            "PutObject",
            "PUT",
            bucket,
            key,
            body=data.segments(key, 0, size),
        )

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
        if not self._small(size):
            self._tasks.get_soon(bucket, key, size, gate, check, checksum, then, failed)
            return
        buffer = self._buffers.acquire(size)

        def got(response: Response) -> None:
            # The buffer goes back once, whatever happens: what fails after this is `failed`'s
            # (never `lost`'s, which would give it back again).
            try:
                if check is not None:
                    check(response.body, response.headers)
            except Exception as exc:
                self._buffers.release(buffer)
                failed(exc)
                return
            self._buffers.release(buffer)
            hand_on(then, failed, (len(response.body), response.ttfb_s))

        def lost(exc: Exception) -> None:
            self._buffers.release(buffer)
            failed(exc)

        extra = dict(CHECKSUM_MODE) if checksum else None
        self.client.send_soon(
            got, lost, "GetObject", "GET", bucket, key, headers=extra, into=buffer
        )

    def stat_soon(self, bucket: str, key: str, then: Then, failed: Failed) -> None:
        self.client.send_soon(
            lambda response: then(int(response.headers.get("content-length", "0"))),
            failed,
            "HeadObject",
            "HEAD",
            bucket,
            key,
        )

    def delete_soon(self, bucket: str, key: str, then: Then, failed: Failed) -> None:
        self.delete_batch_soon(bucket, [key], then, failed)

    def delete_batch_soon(
        self, bucket: str, keys: Sequence[str], then: Then, failed: Failed
    ) -> None:
        if len(keys) > MAX_DELETE_BATCH:
            self._tasks.delete_batch_soon(bucket, keys, then, failed)
            return
        xml, headers, about = delete_request(keys)
        self.client.send_soon(
            lambda response: then(delete_failures(response.body)),
            failed,
            "DeleteObjects",
            "POST",
            bucket,
            query=DELETE_QUERY,
            headers=headers,
            small_body=xml,
            n_objects=len(keys),
            about=about,
        )

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
        delimiter = "/" if listing.delimiter else None

        def got(response: Response) -> None:
            page = list_page(response.body)
            then((page.objects, page.next_token))

        query = list_query(listing.prefix, token, max_keys, after, delimiter)
        self.client.send_soon(
            got, failed, "ListObjectsV2", "GET", bucket, query=query, about=listing.prefix
        )

    def cancel(self) -> None:
        self._tasks.cancel()
        self.client.cancel_going_on()

    def _small(self, size: int) -> bool:
        """Whether an object of `size` goes by the small-request path."""
        return self._fast_max is not None and 0 <= size <= self._fast_max

    async def aclose(self) -> None:
        await self.client.aclose()
        if self._op_log is not None:
            self._op_log.close()
