"""The async S3 client: the operations a workload runner needs, with retries and clear errors.

One client may talk to several endpoints of one storage cluster (gateways serving the same
buckets): each attempt goes where the rotation says, a retry after a connection failure goes to
another endpoint, and an endpoint that keeps failing rests while the others carry its requests.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import contextvars
import hashlib
import inspect
import logging
import os
import re
import ssl
import time
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from urllib.parse import quote

from s3dlio_ray._internal.model import crc
from s3dlio_ray._internal.model.endpoint import Endpoint
from s3dlio_ray._internal.model.errors import ConfigError
from s3dlio_ray._internal.storage.s3.errors import S3ConnectionError, S3Error, parse_error
from s3dlio_ray._internal.storage.s3.http1 import Http1Transport
from s3dlio_ray._internal.storage.s3.http2 import Http2Transport
from s3dlio_ray._internal.storage.s3.retry import RetryPolicy
from s3dlio_ray._internal.storage.s3.signing import (
    EMPTY_PAYLOAD,
    UNSIGNED_PAYLOAD,
    Signer,
    payload_sha256,
)
from s3dlio_ray._internal.storage.s3.transport import (
    Buffer,
    CertificateError,
    ConnectError,
    NoHttp2,
    RequestTimeout,
    Response,
    Transport,
    TransportError,
)
from s3dlio_ray._internal.tuning.endpoints import EndpointPolicy, Rotation
from s3dlio_ray._internal.tuning.parts import part_ranges

log = logging.getLogger(__name__)

MAX_DELETE_BATCH = 1000
SUCCESS = (200, 204, 206)
"""The statuses a request succeeds with unless it says otherwise."""

answered_by: contextvars.ContextVar[str] = contextvars.ContextVar("answered_by", default="")
"""The endpoint that answered (or last failed) the current task's latest request: how an engine
attributes an operation to an endpoint without the client knowing of operations."""


@dataclass(frozen=True)
class ClientOptions:
    """`endpoints`: one or more endpoints serving the same buckets (none: AWS's regional one);
    `first_endpoint`: where the rotation starts (an actor's rank); `bind_address`: the local
    address every connection leaves from."""

    endpoints: tuple[Endpoint, ...] = ()
    endpoint_policy: EndpointPolicy = EndpointPolicy.ROUND_ROBIN
    first_endpoint: int = 0
    bind_address: str | None = None
    region: str = "us-east-1"
    http2: bool = False
    max_connections: int = 256
    connect_timeout_s: float = 10.0
    timeout_s: float = 30.0
    silence_s: float = 30.0
    """No answer from any endpoint for this long, retries included: the endpoint does not
    answer, and a timed-out request is not tried again."""
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    ca_bundle: str | None = None
    insecure: bool = False


CRC32_HEADER = "x-amz-checksum-crc32"


class Uploaded(NamedTuple):
    """A multipart upload done: its ETag, its parts, and the whole object's CRC32 and composite
    checksum (`crc.composite`) when its parts carried theirs."""

    etag: str
    parts: int
    crc32: int | None = None
    composite: str | None = None


@dataclass
class GetResult:
    body: memoryview
    object_size: int
    etag: str
    ttfb_s: float
    http_version: str
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RequestRecord:
    """One HTTP request as the op-log writes it: wall-clock nanoseconds, bytes either way."""

    operation: str
    resource: str
    endpoint: str
    start_ns: int
    first_byte_ns: int | None
    end_ns: int
    nbytes: int
    n_objects: int
    error: str


RequestHook = Callable[[RequestRecord], None]


@dataclass
class ObjectInfo:
    key: str
    size: int
    etag: str


@dataclass
class ListPage:
    objects: list[ObjectInfo]
    next_token: str | None
    prefixes: list[str] = field(default_factory=list)
    """With a delimiter: the common prefixes ("folders") on this page."""


@dataclass
class MultipartUpload:
    key: str
    upload_id: str


class PartGate:
    """Lets one object's parts use spare in-flight capacity without ever waiting for it."""

    def try_acquire(self) -> bool:
        return False

    def release(self) -> None:
        """Give back a permit won by try_acquire."""


RetryHook = Callable[[str, bool], None]

Then = Callable[[Any], None]
"""What a request begun without waiting calls with what its coroutine would return."""
Failed = Callable[[Exception], None]
"""What it calls instead with what the coroutine would raise (or its `Then` raised)."""


def hand_on(then: Then, failed: Failed, value: object) -> None:
    """`then(value)`, or `failed` with what it raised: what began without waiting ends in
    exactly one of the two."""
    try:
        then(value)
    except Exception as exc:
        failed(exc)


def in_task(
    work: Awaitable[object], then: Then, failed: Failed, tasks: set[asyncio.Task[None]]
) -> None:
    """`work` begun without waiting: awaited in a task of its own (held in `tasks` while it
    runs, so it can be cancelled), ended in `then` with its value or `failed` with its error."""

    async def run() -> None:
        try:
            value = await work
        except Exception as exc:
            failed(exc)
            return
        hand_on(then, failed, value)

    task = asyncio.ensure_future(run())
    tasks.add(task)
    task.add_done_callback(tasks.discard)


def _text(elem: ET.Element, name: str) -> str:
    """The text of `name` under `elem`, by local name: stores answer in AWS's namespace,
    another one (`http://doc.s3.amazonaws.com/2006-03-01/`) or none, and all mean the same."""
    return elem.findtext("{*}" + name) or ""


def _findall(elem: ET.Element, name: str) -> list[ET.Element]:
    return elem.findall("{*}" + name)


def _tls_context(ca_bundle: str | None) -> ssl.SSLContext:
    """The system's trust store, or the CA bundle given; a bundle that cannot be read or holds
    no certificate is bad input, said in one line."""
    try:
        return ssl.create_default_context(cafile=ca_bundle)
    except OSError as exc:  # ssl.SSLError is one too
        reason = "no PEM certificate in it" if isinstance(exc, ssl.SSLError) else exc.strerror
        raise ConfigError(
            f"ca_bundle {ca_bundle}: {reason}: give a PEM file of the CA certificates that "
            "signed the endpoint's"
        ) from None


def _request(
    bucket: str,
    key: str,
    about: str,
    query: dict[str, str] | None,
    body: Sequence[Buffer],
    small_body: bytes | None,
) -> tuple[str, Sequence[Buffer], str, str]:
    """A request's resource as errors and the op-log name it, its body, the body's hash as
    signed (a small body's own, a bulk body unsigned) and its query string."""
    named = key or about
    resource = f"s3://{bucket}/{named}" if named else f"s3://{bucket}"
    if small_body is not None:
        body = (small_body,)
        payload_hash = payload_sha256(small_body)
    else:
        payload_hash = UNSIGNED_PAYLOAD if body else EMPTY_PAYLOAD
    return resource, body, payload_hash, "?" + _query(query) if query else ""


_UNRESERVED = re.compile(r"[A-Za-z0-9_.~/-]*").fullmatch
"""A key of these characters is its own percent-encoding (most are: checking costs a fifth of
quoting)."""


def _query(params: dict[str, str]) -> str:
    return "&".join(
        f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" if v != "" else quote(k, safe="-_.~")
        for k, v in params.items()
    )


@dataclass
class _Endpoint:
    """One endpoint of the cluster and its connection pools (one per host name it is reached
    by: virtual-hosted buckets on AWS each have their own)."""

    endpoint: Endpoint
    transports: dict[str, Transport] = field(default_factory=dict)

    @property
    def scheme(self) -> str:
        return self.endpoint.scheme

    @property
    def host(self) -> str:
        return self.endpoint.host

    @property
    def port(self) -> int:
        return self.endpoint.port

    @property
    def url(self) -> str:
        """Where its requests are counted (the address's URL when it has one)."""
        return self.endpoint.label


class S3Client:
    """One credential set, one or more endpoints, connection pools per endpoint; safe for many
    tasks."""

    def __init__(self, options: ClientOptions, signer: Signer) -> None:
        self.options = options
        self._signer = signer
        endpoints = options.endpoints or (Endpoint.aws(options.region),)
        self._aws = any(endpoint.is_aws for endpoint in endpoints)
        self._endpoints = [_Endpoint(endpoint) for endpoint in endpoints]
        self.rotation = Rotation(
            len(self._endpoints), options.endpoint_policy, options.first_endpoint
        )
        self._heard = time.monotonic()
        """When an endpoint last answered (or the client began)."""
        self.on_retry: RetryHook | None = None
        self.on_request: RequestHook | None = None
        self._going_on: set[asyncio.Task[None]] = set()
        """Requests `send_soon` began whose later tries run in a task."""
        self._ssl: ssl.SSLContext | None = None
        if any(e.scheme == "https" for e in self._endpoints):
            self._ssl = _tls_context(options.ca_bundle)
            if options.insecure:
                self._ssl.check_hostname = False
                self._ssl.verify_mode = ssl.CERT_NONE

    @property
    def endpoint_url(self) -> str:
        """The first endpoint (the one a single-endpoint run talks to)."""
        return self._endpoints[0].url

    @property
    def endpoint_urls(self) -> list[str]:
        return [e.url for e in self._endpoints]

    def _transport_for(self, endpoint: _Endpoint, host: str) -> Transport:
        transport = endpoint.transports.get(host)
        if transport is None:
            options = self.options
            ssl_context = self._ssl if endpoint.scheme == "https" else None
            # A name spread over its addresses connects to its own; a bucket's own name (AWS's
            # virtual-hosted style) resolves as it is.
            address = endpoint.endpoint.address if host == endpoint.host else None
            if options.http2:
                transport = Http2Transport(
                    f"{endpoint.scheme}://{address or host}:{endpoint.port}",
                    ssl_context=ssl_context,
                    max_connections=options.max_connections,
                    connect_timeout=options.connect_timeout_s,
                    timeout=options.timeout_s,
                    local_address=options.bind_address,
                )
            else:
                transport = Http1Transport(
                    host,
                    endpoint.port,
                    address=address,
                    ssl_context=ssl_context,
                    max_connections=options.max_connections,
                    connect_timeout=options.connect_timeout_s,
                    timeout=options.timeout_s,
                    local_address=options.bind_address,
                )
            endpoint.transports[host] = transport
        return transport

    def _address(self, endpoint: _Endpoint, bucket: str, key: str) -> tuple[str, str]:
        """(host, path): virtual-hosted style on AWS, path style on custom endpoints."""
        quoted_key = key if _UNRESERVED(key) else quote(key, safe="/~")
        if self._aws and bucket and "." not in bucket:
            return f"{bucket}.{endpoint.host}", "/" + quoted_key
        path = f"/{bucket}" if bucket else "/"
        if key:
            path += "/" + quoted_key
        return endpoint.host, path

    def _choose(self, operation: str, resource: str, avoid: int | None) -> int:
        index = self.rotation.pick(time.monotonic(), avoid)
        if index is None:
            wait = self.rotation.next_return() - time.monotonic()
            raise S3ConnectionError(
                f"{operation} {resource}: all {len(self._endpoints)} endpoints are failing and "
                f"resting (the first is back in {max(wait, 0):.0f} s); check the endpoints and "
                "that the S3 service is running"
            )
        return index

    def _connection_failed(self, index: int, exc: TransportError) -> None:
        rest = self.rotation.failed(index, time.monotonic())
        if rest is not None:
            log.warning(
                "endpoint %s keeps failing (%s); its requests go to the others for %.0f s",
                self._endpoints[index].url,
                exc,
                rest,
            )

    async def _send(
        self,
        operation: str,
        method: str,
        bucket: str,
        key: str = "",
        query: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        body: Sequence[Buffer] = (),
        into: bytearray | memoryview | None = None,
        small_body: bytes | None = None,
        ok: tuple[int, ...] = SUCCESS,
        n_objects: int = 1,
        about: str = "",
        resume: tuple[int, int | None] = (0, None),
    ) -> Response:
        """One request, retried as the policy says on another endpoint when one is failing;
        `_attempt` makes each try. `about`: what a request to the bucket concerns (a LIST's
        prefix, a DeleteObjects' key or its keys' common prefix), as the op-log and errors name
        it, so a replay knows. `resume`: the tries already made (by `send_soon`) and the
        endpoint the last one failed at."""
        resource, body, payload_hash, target_query = _request(
            bucket, key, about, query, body, small_body
        )
        policy = self.options.retry
        attempt, avoid = resume
        began = time.monotonic()
        while True:
            attempt += 1
            last = attempt >= policy.max_attempts
            index = self._choose(operation, resource, avoid)
            endpoint = self._endpoints[index]
            try:
                response, start_ns = await self._attempt(
                    index,
                    operation,
                    resource,
                    method,
                    bucket,
                    key,
                    target_query,
                    headers,
                    payload_hash,
                    body,
                    into,
                    ok,
                    n_objects,
                )
            except TransportError as exc:
                silent = isinstance(exc, RequestTimeout) and self._silent_since(began)
                if silent or isinstance(exc, CertificateError | NoHttp2):
                    raise self._transport_error(
                        operation, resource, endpoint, exc, attempt, silent
                    ) from None
                self._connection_failed(index, exc)
                if last:
                    raise self._transport_error(
                        operation, resource, endpoint, exc, attempt
                    ) from None
                self._retrying(operation, isinstance(exc, RequestTimeout))
                avoid = index
                await asyncio.sleep(policy.delay(attempt))
                continue
            if response.status in ok:
                return response
            error = parse_error(operation, resource, response.status, bytes(response.body))
            if self.on_request is not None:
                self._record(
                    operation, resource, endpoint, start_ns, response, 0, n_objects, str(error)
                )
            if not error.retryable or last:
                raise error
            self._retrying(operation, error.throttled)
            await asyncio.sleep(policy.delay(attempt))

    async def _attempt(
        self,
        index: int,
        operation: str,
        resource: str,
        method: str,
        bucket: str,
        key: str,
        target_query: str,
        headers: dict[str, str] | None,
        payload_hash: str,
        body: Sequence[Buffer],
        into: bytearray | memoryview | None,
        ok: tuple[int, ...],
        n_objects: int,
    ) -> tuple[Response, int]:
        """One try at endpoint `index`: addressed, signed, sent and counted in flight there; a
        success or a failed connection recorded in the op-log (an error answer is the caller's
        to record, with what it parsed). Answers the response and when the try started."""
        endpoint = self._endpoints[index]
        answered_by.set(endpoint.url)
        transport, target, signed = self._signed(
            endpoint, method, bucket, key, target_query, headers, payload_hash
        )
        start_ns = time.time_ns()
        rotation = self.rotation
        rotation.in_flight[index] += 1
        try:
            response = await transport.request(method, target, signed, body, into)
        except TransportError as exc:
            if self.on_request is not None:
                self._record(operation, resource, endpoint, start_ns, None, 0, n_objects, str(exc))
            raise
        finally:
            rotation.in_flight[index] -= 1
        self._heard_from(index, operation, resource, start_ns, response, body, ok, n_objects)
        return response, start_ns

    def _signed(
        self,
        endpoint: _Endpoint,
        method: str,
        bucket: str,
        key: str,
        target_query: str,
        headers: dict[str, str] | None,
        payload_hash: str,
    ) -> tuple[Transport, str, dict[str, str]]:
        """Where a try at `endpoint` goes: its pool, the target and the signed headers."""
        host, path = self._address(endpoint, bucket, key)
        target = path + target_query
        host_header = host if endpoint.port in (80, 443) else f"{host}:{endpoint.port}"
        signed = self._signer.sign(method, host_header, target, headers or {}, payload_hash)
        return self._transport_for(endpoint, host), target, signed

    def _heard_from(
        self,
        index: int,
        operation: str,
        resource: str,
        start_ns: int,
        response: Response,
        body: Sequence[Buffer],
        ok: tuple[int, ...],
        n_objects: int,
    ) -> None:
        """Endpoint `index` answered: it is alive, and a success goes in the op-log (an error
        answer is the caller's to record, with what it parsed)."""
        self._heard = time.monotonic()
        self.rotation.succeeded(index)
        if response.status in ok and self.on_request is not None:
            moved = (
                len(response.body)
                if operation == "GetObject"
                else sum(map(len, body))
                if operation in ("PutObject", "UploadPart")
                else 0
            )
            endpoint = self._endpoints[index]
            self._record(operation, resource, endpoint, start_ns, response, moved, n_objects, "")

    def send_soon(
        self,
        answered: Callable[[Response], None],
        failed: Callable[[Exception], None],
        operation: str,
        method: str,
        bucket: str,
        key: str = "",
        query: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        body: Sequence[Buffer] = (),
        into: bytearray | memoryview | None = None,
        small_body: bytes | None = None,
        n_objects: int = 1,
        about: str = "",
    ) -> None:
        """`_send` without a task, for small requests over HTTP/1.1: the first try is written
        now and a success handed to `answered` from the connection's own callback; a try that
        `_send` would retry goes on as `_send` in a task (the try counted, the endpoint it
        failed at avoided), whose answer reaches `answered` or whose error reaches `failed`.
        Either runs with `answered_by` naming the endpoint, as after `_send`."""
        resource, body, payload_hash, target_query = _request(
            bucket, key, about, query, body, small_body
        )

        def again(resume: tuple[int, int | None]) -> Awaitable[Response]:
            return self._send(
                operation,
                method,
                bucket,
                key,
                query,
                headers,
                body,
                into,
                small_body,
                n_objects=n_objects,
                about=about,
                resume=resume,
            )

        began = time.monotonic()
        index = self.rotation.pick(began, None)
        if index is None:
            self._go_on(answered, failed, again, (0, None))
            return
        endpoint = self._endpoints[index]
        transport, target, signed = self._signed(
            endpoint, method, bucket, key, target_query, headers, payload_hash
        )
        assert isinstance(transport, Http1Transport)
        start_ns = time.time_ns()
        rotation = self.rotation
        rotation.in_flight[index] += 1

        def got(response: Response) -> None:
            rotation.in_flight[index] -= 1
            self._heard_from(
                index, operation, resource, start_ns, response, body, SUCCESS, n_objects
            )
            answered_by.set(endpoint.url)
            if response.status in SUCCESS:
                hand_on(answered, failed, response)
                return
            error = parse_error(operation, resource, response.status, bytes(response.body))
            if self.on_request is not None:
                self._record(
                    operation, resource, endpoint, start_ns, response, 0, n_objects, str(error)
                )
            if not error.retryable or self.options.retry.max_attempts <= 1:
                failed(error)
                return
            self._retrying(operation, error.throttled)
            self._go_on(answered, failed, again, (1, None))

        def lost(exc: TransportError) -> None:
            rotation.in_flight[index] -= 1
            answered_by.set(endpoint.url)
            if self.on_request is not None:
                self._record(operation, resource, endpoint, start_ns, None, 0, n_objects, str(exc))
            silent = isinstance(exc, RequestTimeout) and self._silent_since(began)
            final = silent or isinstance(exc, CertificateError | NoHttp2)
            if not final:
                self._connection_failed(index, exc)
            if final or self.options.retry.max_attempts <= 1:
                failed(self._transport_error(operation, resource, endpoint, exc, 1, silent))
                return
            self._retrying(operation, isinstance(exc, RequestTimeout))
            self._go_on(answered, failed, again, (1, index))

        transport.send(method, target, signed, body, into, got, lost)

    def _go_on(
        self,
        answered: Callable[[Response], None],
        failed: Callable[[Exception], None],
        again: Callable[[tuple[int, int | None]], Awaitable[Response]],
        resume: tuple[int, int | None],
    ) -> None:
        """The rest of a `send_soon`'s tries, as `_send` makes them, in a task of its own."""

        async def rest_of_tries() -> Response:
            if resume[0]:
                await asyncio.sleep(self.options.retry.delay(resume[0]))
            return await again(resume)

        in_task(rest_of_tries(), answered, failed, self._going_on)

    def _record(
        self,
        operation: str,
        resource: str,
        endpoint: _Endpoint,
        start_ns: int,
        response: Response | None,
        nbytes: int,
        n_objects: int,
        error: str,
    ) -> None:
        assert self.on_request is not None
        first_byte = start_ns + int(response.ttfb_s * 1e9) if response is not None else None
        self.on_request(
            RequestRecord(
                operation,
                resource,
                endpoint.url,
                start_ns,
                first_byte,
                time.time_ns(),
                nbytes,
                n_objects,
                error,
            )
        )

    def _silent_since(self, began: float) -> bool:
        """No endpoint has answered since this request began, for silence_s or longer."""
        return time.monotonic() - max(self._heard, began) >= self.options.silence_s

    def _retrying(self, operation: str, throttled: bool) -> None:
        if self.on_retry is not None:
            self.on_retry(operation, throttled)

    def _transport_error(
        self,
        operation: str,
        resource: str,
        endpoint: _Endpoint,
        exc: TransportError,
        attempts: int,
        silent: bool = False,
    ) -> S3ConnectionError:
        hint = "check --endpoint and that the S3 service is running"
        if isinstance(exc, CertificateError):
            hint = (
                "give its CA as ca_bundle (or AWS_CA_BUNDLE), or insecure: true for a lab endpoint"
            )
        elif silent:
            hint = (
                f"no answer from the endpoint for {self.options.silence_s:g} s: it is not "
                "answering; silence_s sets how long to wait"
            )
        elif isinstance(exc, NoHttp2):
            hint = "it speaks HTTP/1.1: leave http2 off (--set http2=false)"
        elif not isinstance(exc, ConnectError):
            hint = "the endpoint is overloaded or the network is failing"
        return S3ConnectionError(
            f"{operation} {resource} at {endpoint.url}: {exc} (after {attempts} attempts; {hint})"
        )

    async def create_bucket(self, bucket: str) -> bool:
        """Create the bucket; False if it already exists and is ours."""
        body = b""
        if self.options.region != "us-east-1" and self._aws:
            body = (
                "<CreateBucketConfiguration><LocationConstraint>"
                f"{self.options.region}</LocationConstraint></CreateBucketConfiguration>"
            ).encode()
        try:
            await self._send("CreateBucket", "PUT", bucket, small_body=body)
        except S3Error as exc:
            if exc.code == "BucketAlreadyOwnedByYou":
                return False
            raise
        return True

    async def bucket_exists(self, bucket: str) -> bool:
        """True if the bucket exists and these credentials may use it.

        GetBucketLocation rather than HEAD: an error then has a body that names its cause.
        """
        try:
            await self._send("GetBucketLocation", "GET", bucket, query={"location": ""})
        except S3Error as exc:
            if exc.status == 404:
                return False
            raise
        return True

    async def delete_bucket(self, bucket: str) -> None:
        await self._send("DeleteBucket", "DELETE", bucket)

    async def put_object(
        self, bucket: str, key: str, body: Sequence[Buffer], crc32: int | None = None
    ) -> str:
        """PUT the object; with `crc32` the store checks the body against it and keeps it."""
        headers = None
        if crc32 is not None:
            headers = {"x-amz-sdk-checksum-algorithm": "CRC32", CRC32_HEADER: crc.header(crc32)}
        response = await self._send("PutObject", "PUT", bucket, key, headers=headers, body=body)
        return response.headers.get("etag", "")

    async def create_multipart_upload(self, bucket: str, key: str, crc32: bool = False) -> str:
        """Start an upload; with `crc32` each part must carry its CRC32 (and the store keeps the
        object's composite one)."""
        headers = {"x-amz-checksum-algorithm": "CRC32"} if crc32 else None
        response = await self._send(
            "CreateMultipartUpload",
            "POST",
            bucket,
            key,
            query={"uploads": ""},
            headers=headers,
            small_body=b"",
        )
        return _text(ET.fromstring(bytes(response.body)), "UploadId")

    async def upload_part(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        number: int,
        body: Sequence[Buffer],
        crc32: int | None = None,
    ) -> str:
        headers = None if crc32 is None else {CRC32_HEADER: crc.header(crc32)}
        response = await self._send(
            "UploadPart",
            "PUT",
            bucket,
            key,
            query={"partNumber": str(number), "uploadId": upload_id},
            headers=headers,
            body=body,
        )
        return response.headers.get("etag", "")

    async def complete_multipart_upload(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        etags: list[str],
        crc32s: Sequence[int] | None = None,
    ) -> str:
        checksums = [f"<ChecksumCRC32>{crc.header(c)}</ChecksumCRC32>" for c in crc32s or ()]
        parts = "".join(
            f"<Part><PartNumber>{n}</PartNumber><ETag>{etag}</ETag>"
            f"{checksums[n - 1] if checksums else ''}</Part>"
            for n, etag in enumerate(etags, start=1)
        )
        xml = f"<CompleteMultipartUpload>{parts}</CompleteMultipartUpload>".encode()
        response = await self._send(
            "CompleteMultipartUpload",
            "POST",
            bucket,
            key,
            query={"uploadId": upload_id},
            small_body=xml,
        )
        root = ET.fromstring(bytes(response.body))
        if root.tag.endswith("Error"):
            raise parse_error(
                "CompleteMultipartUpload", f"s3://{bucket}/{key}", 200, bytes(response.body)
            )
        return _text(root, "ETag")

    async def abort_multipart_upload(self, bucket: str, key: str, upload_id: str) -> None:
        await self._send(
            "AbortMultipartUpload", "DELETE", bucket, key, query={"uploadId": upload_id}
        )

    async def put_object_multipart(
        self,
        bucket: str,
        key: str,
        size: int,
        body_for: Callable[[int, int], Sequence[Buffer] | Awaitable[Sequence[Buffer]]],
        part_size: int,
        gate: PartGate | None = None,
        crc32: bool = False,
        send_crc32: bool = True,
    ) -> Uploaded:
        """Upload in parts, as many at once as `gate` has spare; abort the upload on failure.
        `body_for(offset, length)` answers a part's buffers, or awaits them (read from a file).
        With `crc32` the answer has the whole object's CRC32, and (`send_crc32`) every part
        carries its own for the store to check."""
        ranges = part_ranges(size, part_size)
        send = crc32 and send_crc32
        upload_id = await self.create_multipart_upload(bucket, key, send)
        etags: list[str] = [""] * len(ranges)
        crcs: list[int] = [0] * len(ranges)

        async def one(index: int, offset: int, length: int) -> None:
            body = body_for(offset, length)
            if inspect.isawaitable(body):
                body = await body
            if crc32:
                crcs[index] = crc.of_buffers(body)
            etags[index] = await self.upload_part(
                bucket, key, upload_id, index + 1, body, crcs[index] if send else None
            )

        try:
            await in_parts(ranges, gate or PartGate(), one)
            etag = await self.complete_multipart_upload(
                bucket, key, upload_id, etags, crcs if send else None
            )
        except BaseException:
            await asyncio.shield(self._abort_quietly(bucket, key, upload_id))
            raise
        if not crc32:
            return Uploaded(etag, len(ranges))
        return Uploaded(etag, len(ranges), crc.of(crcs, ranges), crc.composite(crcs))

    async def _abort_quietly(self, bucket: str, key: str, upload_id: str) -> None:
        with contextlib.suppress(Exception):
            await self.abort_multipart_upload(bucket, key, upload_id)

    async def get_object(
        self,
        bucket: str,
        key: str,
        into: bytearray | memoryview | None = None,
        byte_range: tuple[int, int] | None = None,
        extra: Mapping[str, str] | None = None,
    ) -> GetResult:
        """GET the object (or `byte_range`, inclusive bounds) into `into` when it fits.

        A ranged answer that is not exactly the bytes asked for (short, shifted, or without its
        Content-Range) is retried like a failed request, and never handed on as data.
        """
        headers = dict(extra or {})
        if byte_range is not None:
            headers["Range"] = f"bytes={byte_range[0]}-{byte_range[1]}"
        policy = self.options.retry
        attempt = 0
        while True:
            attempt += 1
            response = await self._send("GetObject", "GET", bucket, key, headers=headers, into=into)
            wrong = wrong_range(response.status, response.headers, len(response.body), byte_range)
            if wrong is None:
                break
            if attempt >= policy.max_attempts:
                raise S3Error(
                    "GetObject", f"s3://{bucket}/{key}", response.status, "IncompleteBody", wrong
                )
            self._retrying("GetObject", False)
            await asyncio.sleep(policy.delay(attempt))
        size = len(response.body)
        content_range = response.headers.get("content-range", "")
        if response.status == 206 and "/" in content_range:
            total = content_range.rsplit("/", 1)[1]
            if total.isdigit():
                size = int(total)
        return GetResult(
            response.body,
            size,
            response.headers.get("etag", ""),
            response.ttfb_s,
            response.http_version,
            response.headers,
        )

    async def get_object_ranged(
        self,
        bucket: str,
        key: str,
        part_size: int,
        allocate: Callable[[int], bytearray],
        gate: PartGate | None = None,
        extra: Mapping[str, str] | None = None,
        span: tuple[int, int] | None = None,
    ) -> GetResult:
        """GET a large object, or the `span` (offset, length) of one, as concurrent ranges,
        with no HEAD first.

        Without a span the first range tells the size (Content-Range); the rest run as many at
        once as `gate` has spare, each straight into its slice of one buffer from `allocate`.
        """
        start, wanted = span if span is not None else (0, None)
        first_end = start + min(part_size, wanted or part_size) - 1
        first = await self.get_object(bucket, key, byte_range=(start, first_end), extra=extra)
        size = first.object_size if wanted is None else wanted
        if size <= len(first.body):
            return first
        buffer = allocate(size)
        view = memoryview(buffer)[:size]
        view[: len(first.body)] = first.body

        async def one(index: int, offset: int, length: int) -> None:
            part = await self.get_object(
                bucket,
                key,
                into=view[offset : offset + length],
                byte_range=(start + offset, start + offset + length - 1),
            )
            if part.body.obj is not view.obj:
                view[offset : offset + length] = part.body

        await in_parts(part_ranges(size, part_size)[1:], gate or PartGate(), one)
        return GetResult(view, size, first.etag, first.ttfb_s, first.http_version, first.headers)

    async def stored_crc32(self, bucket: str, key: str) -> str | None:
        """The x-amz-checksum-crc32 the store kept for the object (HEAD with checksum mode), as
        it answers it (`...-N`: composite, of the parts), or None when it keeps none: stores that
        take checksum headers unchecked (Ceph RGW 16) answer none."""
        response = await self._send(
            "HeadObject", "HEAD", bucket, key, headers={"x-amz-checksum-mode": "ENABLED"}
        )
        return response.headers.get(CRC32_HEADER) or None

    async def head_object(self, bucket: str, key: str) -> ObjectInfo:
        response = await self._send("HeadObject", "HEAD", bucket, key)
        return ObjectInfo(
            key, int(response.headers.get("content-length", "0")), response.headers.get("etag", "")
        )

    async def list_objects_page(
        self,
        bucket: str,
        prefix: str = "",
        token: str | None = None,
        max_keys: int = 1000,
        start_after: str | None = None,
        delimiter: str | None = None,
    ) -> ListPage:
        query = list_query(prefix, token, max_keys, start_after, delimiter)
        response = await self._send("ListObjectsV2", "GET", bucket, query=query, about=prefix)
        return list_page(response.body)

    async def list_objects(self, bucket: str, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        """Every object under `prefix`, following continuation tokens."""
        token: str | None = None
        while True:
            page = await self.list_objects_page(bucket, prefix, token)
            for info in page.objects:
                yield info
            token = page.next_token
            if not token:
                return

    async def delete_objects(self, bucket: str, keys: Sequence[str]) -> tuple[int, list[str]]:
        """Delete in batches of at most 1000 keys; returns (deleted, keys that failed)."""
        deleted, failed = 0, []
        for start in range(0, len(keys), MAX_DELETE_BATCH):
            batch = keys[start : start + MAX_DELETE_BATCH]
            xml, headers, about = delete_request(batch)
            response = await self._send(
                "DeleteObjects",
                "POST",
                bucket,
                query=DELETE_QUERY,
                headers=headers,
                small_body=xml,
                n_objects=len(batch),
                about=about,
            )
            errors = delete_failures(response.body)
            failed.extend(errors)
            deleted += len(batch) - len(errors)
        return deleted, failed

    async def list_multipart_uploads(self, bucket: str, prefix: str = "") -> list[MultipartUpload]:
        uploads: list[MultipartUpload] = []
        markers: dict[str, str] = {}
        while True:
            query = {"uploads": ""}
            if prefix:
                query["prefix"] = prefix
            query.update(markers)
            response = await self._send("ListMultipartUploads", "GET", bucket, query=query)
            root = ET.fromstring(bytes(response.body))
            uploads.extend(
                MultipartUpload(_text(item, "Key"), _text(item, "UploadId"))
                for item in _findall(root, "Upload")
            )
            if _text(root, "IsTruncated") != "true":
                return uploads
            markers = {
                "key-marker": _text(root, "NextKeyMarker"),
                "upload-id-marker": _text(root, "NextUploadIdMarker"),
            }

    def cancel_going_on(self) -> None:
        """Give up the later tries of requests `send_soon` began."""
        for task in self._going_on:
            task.cancel()

    async def aclose(self) -> None:
        self.cancel_going_on()
        for endpoint in self._endpoints:
            for transport in endpoint.transports.values():
                await transport.aclose()
            endpoint.transports.clear()


def list_query(
    prefix: str, token: str | None, max_keys: int, start_after: str | None, delimiter: str | None
) -> dict[str, str]:
    """A ListObjectsV2 page's query."""
    query = {"list-type": "2", "max-keys": str(max_keys)}
    if prefix:
        query["prefix"] = prefix
    if token:
        query["continuation-token"] = token
    elif start_after:
        query["start-after"] = start_after
    if delimiter:
        query["delimiter"] = delimiter
    return query


def list_page(body: Buffer) -> ListPage:
    """A ListObjectsV2 answer read."""
    root = ET.fromstring(bytes(body))
    objects = [
        ObjectInfo(_text(item, "Key"), int(_text(item, "Size") or 0), _text(item, "ETag"))
        for item in _findall(root, "Contents")
    ]
    truncated = _text(root, "IsTruncated") == "true"
    prefixes = [_text(item, "Prefix") for item in _findall(root, "CommonPrefixes")]
    return ListPage(objects, _text(root, "NextContinuationToken") if truncated else None, prefixes)


DELETE_QUERY = {"delete": ""}


def delete_request(batch: Sequence[str]) -> tuple[bytes, dict[str, str], str]:
    """A DeleteObjects request of at most 1000 keys: its body, headers, and what it is about
    (the keys' common prefix)."""
    objects = "".join(f"<Object><Key>{_xml_escape(key)}</Key></Object>" for key in batch)
    xml = f"<Delete><Quiet>true</Quiet>{objects}</Delete>".encode()
    md5 = base64.b64encode(hashlib.md5(xml, usedforsecurity=False).digest()).decode()
    headers = {"Content-MD5": md5, "Content-Type": "application/xml"}
    return xml, headers, os.path.commonprefix(list(batch))  # noqa: RUF071 (keys, not paths)


def delete_failures(body: Buffer) -> list[str]:
    """The keys a DeleteObjects answer says were not deleted."""
    return [_text(err, "Key") for err in _findall(ET.fromstring(bytes(body)), "Error")]


_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


async def in_parts(
    ranges: Sequence[tuple[int, int]],
    gate: PartGate,
    one: Callable[[int, int, int], Awaitable[None]],
) -> None:
    """`one(index, offset, length)` for each range: one at a time, and as many more at once as
    `gate` has spare slots (each released when its worker runs out of ranges); the first error
    cancels the rest and is raised."""
    pending = iter(enumerate(ranges))

    async def worker(extra: bool) -> None:
        try:
            for index, (offset, length) in pending:
                await one(index, offset, length)
        finally:
            if extra:
                gate.release()

    workers = [asyncio.ensure_future(worker(False))]
    while len(workers) < len(ranges) and gate.try_acquire():
        workers.append(asyncio.ensure_future(worker(True)))
    try:
        await asyncio.gather(*workers)
    except BaseException:
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        raise


def wrong_range(
    status: int, headers: Mapping[str, str], length: int, asked: tuple[int, int] | None
) -> str | None:
    """What is wrong with the answer to a GET of bytes `asked`, or None when it is exactly those
    bytes (or, from a store that ignores Range with 200, the whole object from byte 0)."""
    if asked is None or (status == 200 and asked[0] == 0):
        return None
    start, end = asked
    match = _CONTENT_RANGE.fullmatch(headers.get("content-range", "").strip())
    if status != 206 or match is None:
        return f"asked bytes {start}-{end}, got status {status} without a byte range"
    first, last, total = int(match[1]), int(match[2]), match[3]
    expected_last = min(end, int(total) - 1) if total.isdigit() else end
    if first != start or last != expected_last or length != last - first + 1:
        return f"asked bytes {start}-{end}, got bytes {first}-{last} ({length} bytes) of {total}"
    return None


def _xml_escape(text: str) -> str:
    return (
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    )
