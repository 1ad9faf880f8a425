"""The S3 client against a real moto server process."""

from __future__ import annotations

import asyncio
import hashlib

import pytest
from conftest import answering, make_client
from proxy import TcpProxy

from s3dlio_ray._internal.execution.engine import AdaptiveLimiter
from s3dlio_ray._internal.model.content import ObjectData
from s3dlio_ray._internal.storage.s3.errors import S3Error
from s3dlio_ray._internal.storage.s3.retry import RetryPolicy

MIB = 1024 * 1024


def multipart_etag(data: bytes, part_size: int) -> str:
    digests = [
        hashlib.md5(data[i : i + part_size]).digest() for i in range(0, len(data), part_size)
    ]
    return f'"{hashlib.md5(b"".join(digests)).hexdigest()}-{len(digests)}"'


def test_multipart_put_of_64_mib_with_10_mib_parts(moto_url, boto3_s3, bucket):
    data = ObjectData(9)
    size = 64 * MIB
    content = data.content("big", size)

    async def main():
        client = make_client(moto_url)
        uploaded = await client.put_object_multipart(
            bucket,
            "big",
            size,
            lambda o, n: data.segments("big", o, n),
            10 * MIB,
            AdaptiveLimiter(4),
        )
        await client.aclose()
        return uploaded.etag, uploaded.parts

    etag, parts = asyncio.run(main())
    assert parts == 7
    assert etag == multipart_etag(content, 10 * MIB)
    stored = boto3_s3.get_object(Bucket=bucket, Key="big")
    assert stored["ETag"] == etag
    assert stored["Body"].read() == content
    assert boto3_s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_failed_multipart_upload_is_aborted(moto_url, boto3_s3, bucket):
    def broken_body(offset, length):
        if offset >= 10 * MIB:
            raise S3Error("UploadPart", "test", 500, "InternalError", "source failed")
        return [bytes(length)]

    async def main():
        client = make_client(moto_url)
        with pytest.raises(S3Error, match="source failed"):
            await client.put_object_multipart(bucket, "broken", 30 * MIB, broken_body, 10 * MIB)
        await client.aclose()

    asyncio.run(main())
    assert boto3_s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert "Contents" not in boto3_s3.list_objects_v2(Bucket=bucket)


def test_ranged_get_and_concurrent_ranged_get(moto_url, boto3_s3, bucket):
    content = ObjectData(4).content("r", 23 * MIB + 5)
    boto3_s3.put_object(Bucket=bucket, Key="r", Body=content)

    async def main():
        client = make_client(moto_url)
        piece = await client.get_object(bucket, "r", byte_range=(1000, 1999))
        assert bytes(piece.body) == content[1000:2000]
        assert piece.object_size == len(content)
        whole = await client.get_object_ranged(bucket, "r", 5 * MIB, bytearray, AdaptiveLimiter(8))
        assert whole.object_size == len(content)
        assert bytes(whole.body) == content
        small = await client.get_object_ranged(bucket, "r", 64 * MIB, bytearray)
        assert bytes(small.body) == content
        await client.aclose()

    asyncio.run(main())


def test_listing_paginates_over_more_than_1000_keys(moto_url, bucket):
    keys = [f"p/{i:05d}" for i in range(1100)]

    async def main():
        client = make_client(moto_url)
        limiter = asyncio.Semaphore(16)

        async def put(key):
            async with limiter:
                await client.put_object(bucket, key, [b"x"])

        await asyncio.gather(*(put(k) for k in keys))
        first = await client.list_objects_page(bucket, "p/")
        listed = [info.key async for info in client.list_objects(bucket, "p/")]
        await client.aclose()
        return first, listed

    first, listed = asyncio.run(main())
    assert len(first.objects) == 1000 and first.next_token
    assert listed == keys


def test_batch_delete_splits_into_requests_of_at_most_1000_keys(moto_url, boto3_s3, bucket):
    keys = [f"d/{i:05d}" for i in range(2500)]
    host, port = moto_url.removeprefix("http://").split(":")

    async def main():
        proxy = await TcpProxy(host, int(port)).start()
        client = make_client(proxy.url)
        sem = asyncio.Semaphore(16)

        async def put(key):
            async with sem:
                await client.put_object(bucket, key, [b"y"])

        await asyncio.gather(*(put(k) for k in keys))
        deleted, failed = await client.delete_objects(bucket, keys)
        await client.aclose()
        await proxy.close()
        return deleted, failed, proxy.request_lines

    deleted, failed, lines = asyncio.run(main())
    assert (deleted, failed) == (2500, [])
    assert [line for line in lines if line.startswith("POST") and "?delete" in line] == [
        f"POST /{bucket}?delete"
    ] * 3
    assert "Contents" not in boto3_s3.list_objects_v2(Bucket=bucket, Prefix="d/")


def test_missing_object_is_a_clear_error_and_not_retried(moto_url, bucket):
    async def main():
        client = make_client(moto_url)
        retries = []
        client.on_retry = lambda op, throttled: retries.append(op)
        with pytest.raises(S3Error) as info:
            await client.get_object(bucket, "nope")
        await client.aclose()
        return info.value, retries

    error, retries = asyncio.run(main())
    assert error.code == "NoSuchKey" and error.status == 404
    assert str(error) == f"GetObject s3://{bucket}/nope: NoSuchKey (404): the object does not exist"
    assert retries == []


def test_head_object_and_bucket_exists(moto_url, boto3_s3, bucket):
    boto3_s3.put_object(Bucket=bucket, Key="h", Body=b"12345")

    async def main():
        client = make_client(moto_url)
        info = await client.head_object(bucket, "h")
        exists = await client.bucket_exists(bucket), await client.bucket_exists("no-such-bucket-x")
        await client.aclose()
        return info, exists

    info, exists = asyncio.run(main())
    assert info.size == 5 and info.etag == f'"{hashlib.md5(b"12345").hexdigest()}"'
    assert exists == (True, False)


def test_slowdown_and_5xx_are_retried_with_backoff_and_reported_as_throttling():
    """A real HTTP server that answers 503 SlowDown, then 500, then success."""
    answers = [
        b"HTTP/1.1 503 Slow Down\r\nContent-Length: 55\r\n\r\n"
        b"<Error><Code>SlowDown</Code><Message>x</Message></Error>",
        b"HTTP/1.1 500 Internal\r\nContent-Length: 0\r\n\r\n",
        b'HTTP/1.1 200 OK\r\nETag: "abc"\r\nContent-Length: 0\r\n\r\n',
    ]

    async def handler(reader, writer):
        while answers:
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
            writer.write(answers.pop(0))
            await writer.drain()
        writer.close()

    async def main():
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        client = make_client(f"http://127.0.0.1:{port}", retry=RetryPolicy(5, 0.01, 0.05))
        events = []
        client.on_retry = lambda op, throttled: events.append((op, throttled))
        etag = await client.put_object("b", "k", [b"data"])
        await client.aclose()
        server.close()
        return etag, events

    etag, events = asyncio.run(main())
    assert etag == '"abc"'
    assert events == [("PutObject", True), ("PutObject", False)]


def test_access_denied_is_not_retried():
    async def handler(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        body = b"<Error><Code>AccessDenied</Code><Message>no</Message></Error>"
        writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        await writer.drain()

    async def main():
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        client = make_client(f"http://127.0.0.1:{port}")
        events = []
        client.on_retry = lambda op, throttled: events.append(op)
        with pytest.raises(S3Error, match="access denied") as info:
            await client.get_object("theirs", "k")
        await client.aclose()
        server.close()
        return info.value, events

    error, events = asyncio.run(main())
    assert error.status == 403 and events == []


def test_connection_reset_mid_response_is_retried():
    """The first connection dies halfway through the body; the retry gets the whole object."""
    body = b"0123456789" * 1000
    attempts = []

    async def handler(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        attempts.append(1)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body))
        writer.write(body[: 4000 if len(attempts) == 1 else len(body)])
        await writer.drain()
        if len(attempts) == 1:
            writer.transport.abort()

    async def main():
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        client = make_client(f"http://127.0.0.1:{port}")
        events = []
        client.on_retry = lambda op, throttled: events.append((op, throttled))
        result = await client.get_object("b", "k")
        await client.aclose()
        server.close()
        return bytes(result.body), events

    got, events = asyncio.run(main())
    assert got == body
    assert len(attempts) == 2 and events == [("GetObject", False)]


def range_server(body: bytes, short_answers: int):
    """A real HTTP server for one object that answers its first `short_answers` ranged GETs with
    half the bytes asked for (a valid-looking 206), and every later one exactly."""
    answered = []

    def answer(head: str, _: bytes) -> bytes:
        start, end = map(int, head.split("Range: bytes=")[1].split("\r\n")[0].split("-"))
        end = min(end, len(body) - 1)
        if len(answered) < short_answers:
            end = start + (end - start) // 2
        answered.append((start, end))
        part = body[start : end + 1]
        return (
            b"HTTP/1.1 206 Partial Content\r\nContent-Length: %d\r\n"
            b"Content-Range: bytes %d-%d/%d\r\n\r\n%s" % (len(part), start, end, len(body), part)
        )

    return answering(answer), answered


@pytest.mark.parametrize("short_answers", [1, 3])
def test_a_short_range_is_retried_never_padded(short_answers):
    body = bytes(range(256)) * 200  # 51,200 bytes: a first range and two more of 20,000
    handler, answered = range_server(body, short_answers)

    async def main():
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        client = make_client(f"http://127.0.0.1:{port}", retry=RetryPolicy(5, 0.001, 0.01))
        stale = bytearray(b"\xee" * len(body))  # a reused buffer: must never show through
        try:
            return await client.get_object_ranged("b", "k", 20_000, lambda n: stale)
        finally:
            await client.aclose()
            server.close()

    result = asyncio.run(main())
    assert bytes(result.body) == body
    assert len(answered) == 3 + short_answers
    assert answered[:short_answers] == [(0, 9_999)] * short_answers


def test_a_range_that_stays_short_is_an_error_naming_the_key():
    handler, _ = range_server(bytes(1000), short_answers=100)

    async def main():
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        client = make_client(f"http://127.0.0.1:{port}", retry=RetryPolicy(3, 0.001, 0.01))
        try:
            await client.get_object("b", "k", byte_range=(0, 499))
        finally:
            await client.aclose()
            server.close()

    with pytest.raises(
        S3Error, match=r"s3://b/k: IncompleteBody .* asked bytes 0-499, got bytes 0-249"
    ):
        asyncio.run(main())
