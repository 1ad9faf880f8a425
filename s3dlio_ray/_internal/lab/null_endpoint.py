"""A null S3 endpoint: drains PUT bodies, serves one fixed buffer for every GET.

It answers just enough of S3 (PutObject, multipart create/part/complete, GetObject with Range,
HeadObject, ListObjectsV2, ListMultipartUploads, DeleteObject(s), CreateBucket, GetBucketLocation)
for the clients in the benchmark, and does as little work per byte as Python allows, so the
client's own ceiling shows when moto is the bottleneck. It stores nothing and checks no signature.

    python -m s3dlio_ray._internal.lab.null_endpoint --port 9100 --object-size 10MiB
    python -m s3dlio_ray._internal.lab.null_endpoint --port 9443 --processes 4 \
        --tls-cert cert.pem --tls-key key.pem

The one thing it keeps is each run's journal (the small object a run writes to say what it owns,
and reads back before it cleans up): a journal PUT is stored, served, deleted; one this process
does not hold is NoSuchKey (with `--processes`, another process may hold it).

`--processes K` runs K processes sharing the port (SO_REUSEPORT: the kernel spreads connections
over them), so a many-core host's clients meet an endpoint that is not one core. It runs on
uvloop. `--listed N` makes every bucket list N objects of the object size (`PREFIXf000000`...,
1,000 a page) for the clients that download what they list; a GET of any other key is then
NoSuchKey.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import signal
import ssl
import subprocess
import sys
import time
from urllib.parse import parse_qs, urlsplit

import uvloop

from s3dlio_ray._internal.model.units import parse_size
from s3dlio_ray._internal.storage.journal import JOURNAL_NAME
from s3dlio_ray._internal.storage.s3.http1 import ChunkedDecoder

SCRATCH = 1 << 20
LOG = bool(os.environ.get("NULL_ENDPOINT_LOG"))
XML = "application/xml"
LAST_MODIFIED = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime())


def _journal(target: str) -> bool:
    return urlsplit(target).path.endswith(JOURNAL_NAME)


def listed_name(index: int) -> str:
    return f"f{index:06d}"


# Journals stored, by "bucket/key" (for all connections of this process).
JOURNALS: dict[str, bytes] = {}


class NullS3(asyncio.BufferedProtocol):
    def __init__(self, payload: memoryview, listed: int = 0) -> None:
        self.payload = payload
        self.listed = listed
        self.scratch = memoryview(bytearray(SCRATCH))
        self.head = bytearray()
        self.remaining = 0
        self.chunked: ChunkedDecoder | None = None
        self.request: tuple[str, str, dict[str, str]] | None = None
        self.kept: bytearray | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.scratch

    def buffer_updated(self, nbytes: int) -> None:
        data = self.scratch[:nbytes]
        while len(data):
            if self.request is None:
                data = self._take_head(data)
            elif self.chunked is not None:
                data = self._take_chunked(data)
            else:
                take = min(self.remaining, len(data))
                if self.kept is not None:
                    self.kept += data[:take]
                self.remaining -= take
                data = data[take:]
                if self.remaining == 0:
                    self._respond()

    def _take_head(self, data: memoryview) -> memoryview:
        start = max(0, len(self.head) - 3)
        self.head += data
        end = self.head.find(b"\r\n\r\n", start)
        if end < 0:
            return data[len(data) :]
        rest = memoryview(bytes(self.head[end + 4 :]))
        lines = self.head[:end].decode("latin-1").split("\r\n")
        self.head = bytearray()
        method, target, _ = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        self.request = (method, target, headers)
        self.kept = bytearray() if method == "PUT" and _journal(target) else None
        if headers.get("expect", "").lower() == "100-continue":
            assert self.transport is not None
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        if "chunked" in headers.get("transfer-encoding", "").lower():
            self.chunked = ChunkedDecoder()
        else:
            self.remaining = int(headers.get("content-length", "0"))
            if self.remaining == 0:
                self._respond()
        return rest

    def _take_chunked(self, data: memoryview) -> memoryview:
        assert self.chunked is not None
        self.chunked.feed(data)
        if self.chunked.done:
            self.chunked = None
            self._respond()
        return data[len(data) :]

    def _respond(self) -> None:
        assert self.request is not None and self.transport is not None
        method, target, headers = self.request
        self.request = None
        if LOG:
            print(method, target, headers.get("range", ""), flush=True)
        parts = urlsplit(target)
        query = parse_qs(parts.query, keep_blank_values=True)
        path = parts.path.strip("/")
        bucket, _, key = path.partition("/")
        size = len(self.payload)
        journal = f"{bucket}/{key}" if _journal(target) else None
        if journal and method == "PUT" and self.kept is not None:
            JOURNALS[journal] = bytes(self.kept)
            self.kept = None
            self._send(200, {"ETag": '"0123456789abcdef0123456789abcdef"'})
        elif journal and method == "DELETE":
            JOURNALS.pop(journal, None)
            self._send(204, {})
        elif journal and method in ("GET", "HEAD"):
            stored = JOURNALS.get(journal)
            if stored is None:
                self._send(404, {"Content-Type": XML}, b"<Error><Code>NoSuchKey</Code></Error>")
            elif method == "HEAD":
                self._send(200, {"Content-Length": str(len(stored))}, None)
            else:
                self._send(200, {"Content-Type": "application/json"}, stored)
        elif method == "PUT":
            self._send(200, {"ETag": '"0123456789abcdef0123456789abcdef"'})
        elif method == "POST" and "uploads" in query:
            self._send(
                200,
                {"Content-Type": XML},
                (
                    f"<InitiateMultipartUploadResult><Bucket>{bucket}</Bucket><Key>{key}</Key>"
                    "<UploadId>null-upload</UploadId></InitiateMultipartUploadResult>"
                ).encode(),
            )
        elif method == "POST" and "uploadId" in query:
            self._send(
                200,
                {"Content-Type": XML},
                (
                    f"<CompleteMultipartUploadResult><Bucket>{bucket}</Bucket><Key>{key}</Key>"
                    '<ETag>"0123456789abcdef0123456789abcdef-1"</ETag></CompleteMultipartUploadResult>'
                ).encode(),
            )
        elif method == "POST":
            self._send(200, {"Content-Type": XML}, b"<DeleteResult></DeleteResult>")
        elif method == "DELETE":
            self._send(204, {})
        elif method == "GET" and "location" in query:
            self._send(200, {"Content-Type": XML}, b"<LocationConstraint></LocationConstraint>")
        elif method == "GET" and "uploads" in query:
            self._send(
                200,
                {"Content-Type": XML},
                (
                    f"<ListMultipartUploadsResult><Bucket>{bucket}</Bucket><IsTruncated>false</IsTruncated>"
                    "</ListMultipartUploadsResult>"
                ).encode(),
            )
        elif method == "GET" and not key:
            self._send(200, {"Content-Type": XML}, self._listing(bucket, query))
        elif self.listed and not key.rsplit("/", 1)[-1].startswith("f"):
            self._send(404, {"Content-Type": XML}, b"<Error><Code>NoSuchKey</Code></Error>")
        elif method in ("GET", "HEAD"):
            first, last = 0, size - 1
            status = 200
            extra = {
                "ETag": '"0123456789abcdef0123456789abcdef"',
                "Last-Modified": LAST_MODIFIED,
                "Accept-Ranges": "bytes",
                "Content-Type": "application/octet-stream",
            }
            spec = headers.get("range", "")
            if spec.startswith("bytes="):
                lo, _, hi = spec[6:].partition("-")
                first, last = int(lo or 0), min(int(hi) if hi else size - 1, size - 1)
                status = 206
                extra["Content-Range"] = f"bytes {first}-{last}/{size}"
            body = self.payload[first : last + 1]
            if method == "HEAD":
                self._send(status, {**extra, "Content-Length": str(len(body))}, None)
            else:
                self._send(status, extra, body)
        else:
            self._send(400, {}, b"")

    def _listing(self, bucket: str, query: dict[str, list[str]]) -> bytes:
        prefix = query.get("prefix", [""])[0]
        start = int(query.get("continuation-token", ["0"])[0])
        end = min(self.listed, start + 1000)
        contents = "".join(
            f"<Contents><Key>{prefix}{listed_name(i)}</Key><Size>{len(self.payload)}</Size>"
            '<ETag>"0123456789abcdef0123456789abcdef"</ETag></Contents>'
            for i in range(start, end)
        )
        more = (
            f"<IsTruncated>true</IsTruncated><NextContinuationToken>{end}</NextContinuationToken>"
            if end < self.listed
            else "<IsTruncated>false</IsTruncated>"
        )
        return (
            f"<ListBucketResult><Name>{bucket}</Name><KeyCount>{end - start}</KeyCount>"
            f"{contents}{more}</ListBucketResult>"
        ).encode()

    def _send(
        self, status: int, headers: dict[str, str], body: bytes | memoryview | None = b""
    ) -> None:
        assert self.transport is not None
        reasons = {200: "OK", 204: "No Content", 206: "Partial Content", 404: "Not Found"}
        reason = reasons.get(status, "Bad Request")
        lines = [f"HTTP/1.1 {status} {reason}", "x-amz-request-id: null"]
        if body is not None and "Content-Length" not in headers and status != 204:
            lines.append(f"Content-Length: {len(body)}")
        lines.extend(f"{k}: {v}" for k, v in headers.items())
        self.transport.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        if body:
            self.transport.write(body)


async def serve(
    port: int,
    object_size: int,
    tls: tuple[str, str] | None,
    listed: int = 0,
    host: str = "127.0.0.1",
) -> None:
    payload = memoryview(bytes(object_size))
    context = None
    if tls is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(*tls)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: NullS3(payload, listed),
        host,
        port,
        backlog=1024,
        ssl=context,
        reuse_port=True,
    )
    async with server:
        await server.serve_forever()


def launch(object_size: str, *options: str) -> tuple[int, subprocess.Popen]:
    """This endpoint as a process on a free loopback port, serving objects of `object_size`
    (`options`: more of its flags, --tls-cert, --processes ...); (port, process)."""
    from s3dlio_ray._internal.storage.embedded import free_port

    port = free_port()
    command = [sys.executable, "-m", __name__, "--port", str(port), "--object-size", object_size]
    process = subprocess.Popen([*command, *options], stdout=subprocess.DEVNULL)
    return port, process


def run(
    port: int,
    object_size: int,
    tls: tuple[str, str] | None,
    listed: int = 0,
    host: str = "127.0.0.1",
) -> None:
    uvloop.run(serve(port, object_size, tls, listed, host))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1", help="the address to listen on")
    parser.add_argument("--object-size", default="10MiB")
    parser.add_argument("--tls-cert", help="PEM certificate chain: serve HTTPS")
    parser.add_argument("--tls-key", help="PEM private key of --tls-cert")
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--listed", type=int, default=0, help="objects every bucket lists")
    args = parser.parse_args()
    tls = (args.tls_cert, args.tls_key) if args.tls_cert else None
    size = parse_size(args.object_size)
    others = [
        multiprocessing.Process(
            target=run,
            args=(args.port, size, tls, args.listed, args.host),
            daemon=True,
        )
        for _ in range(args.processes - 1)
    ]
    for process in others:
        process.start()
    # Exit (not die) on SIGTERM, so the daemon processes sharing the port end with this one
    # instead of serving on as orphans.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    run(args.port, size, tls, args.listed, args.host)


if __name__ == "__main__":
    main()
