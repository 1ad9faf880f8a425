"""A lean HTTP/1.1 client for the bulk data path.

Why our own: on this project's 2-core loopback measurements (BENCHMARKS.md)
httpx/h11 reads GET bodies at 0.6-0.8 GB/s and aiohttp at 1.5-1.7 GB/s, while an asyncio
BufferedProtocol that lets the kernel copy straight into a preallocated body buffer reaches the
loopback ceiling (~3.5 GB/s) at a fifth of the CPU. So bodies with a Content-Length are received
into the caller's buffer with no Python code touching each chunk, and request bodies are written
as memoryviews of the caller's data. Everything else (status line, headers, chunked or
close-delimited bodies) takes a plain, slower path: those are small control-plane responses.

Scope: HTTP/1.1 over TCP or TLS, keep-alive pooling, Content-Length, chunked and close-delimited
response bodies, an idle timeout, and one silent retry of a reused connection the server closed
while it sat idle. No pipelining, no proxies, no redirects, no 100-continue.

A request is awaited (`request`, a coroutine) or sent from a callback (`send`, the small-request
path): the same connections, pool and parsing serve both; `send` hands the response to a
callback from the protocol's own `buffer_updated`, so a small request costs no task, future or
await (BENCHMARKS.md, issue 27).
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from s3dlio_ray._internal.storage.s3.transport import (
    Buffer,
    CertificateError,
    ConnectError,
    RequestTimeout,
    Response,
    TransportError,
)

T = TypeVar("T")

HEADER_LIMIT = 64 * 1024
SCRATCH_SIZE = 256 * 1024
WRITE_PIECE = 1024 * 1024
NO_BODY_STATUSES = frozenset({204, 304})
JOIN_BELOW = 64 * 1024
"""A request body up to this size goes out with its head in one write (one system call and
one segment, not one per piece; copying it costs less)."""


class ChunkedDecoder:
    """Decodes a `Transfer-Encoding: chunked` body fed in arbitrary pieces."""

    def __init__(self) -> None:
        self.body = bytearray()
        self.done = False
        self._raw = bytearray()
        self._remaining = -1
        self._in_trailer = False

    def feed(self, data: Buffer) -> None:
        self._raw += data
        pos = 0
        raw = self._raw
        while not self.done:
            if self._remaining > 0:
                take = min(self._remaining, len(raw) - pos)
                if take == 0:
                    break
                self.body += raw[pos : pos + take]
                pos += take
                self._remaining -= take
                continue
            if self._remaining == 0:
                if len(raw) - pos < 2:
                    break
                if raw[pos : pos + 2] != b"\r\n":
                    raise TransportError("malformed chunked body: chunk not followed by CRLF")
                pos += 2
                self._remaining = -1
                continue
            end = raw.find(b"\r\n", pos)
            if end < 0:
                if len(raw) - pos > HEADER_LIMIT:
                    raise TransportError("malformed chunked body: chunk header too long")
                break
            line = bytes(raw[pos:end])
            pos = end + 2
            if self._in_trailer:
                self.done = line == b""
                continue
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise TransportError(
                    f"malformed chunked body: bad chunk size {line[:40]!r}"
                ) from None
            if size == 0:
                self._in_trailer = True
            else:
                self._remaining = size
        del raw[:pos]


def _parse_head(head: bytes) -> tuple[str, int, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/"):
        raise TransportError(f"malformed status line {lines[0][:80]!r}")
    try:
        status = int(parts[1])
    except ValueError:
        raise TransportError(f"malformed status line {lines[0][:80]!r}") from None
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise TransportError(f"malformed header line {line[:80]!r}")
        name = name.strip().lower()
        value = value.strip()
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return parts[0][5:], status, headers


Answered = Callable[[Response], None]
Broken = Callable[[TransportError], None]


class _Connection(asyncio.BufferedProtocol):
    """One keep-alive connection; a response's body lands in the buffer the request named, and
    the response (or why there is none) goes to the request's `answered` (or `broken`), once."""

    def __init__(self, watch: _IdleWatch) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.reusable = True
        self.progress = 0
        self._loop = asyncio.get_running_loop()
        self._watch = watch
        self._writable = asyncio.Event()
        self._writable.set()
        self._head = bytearray(HEADER_LIMIT)
        self._head_view = memoryview(self._head)
        self._scratch = memoryview(bytearray(SCRATCH_SIZE))
        self._reset()

    def _reset(self) -> None:
        self._answered: Answered | None = None
        self._broken: Broken | None = None
        self._state = "idle"
        self._head_len = 0
        self._is_head = False
        self._into: bytearray | memoryview | None = None
        self._body_view: memoryview | None = None
        self._body_len = 0
        self._received = 0
        self._chunked: ChunkedDecoder | None = None
        self._until_close: bytearray | None = None
        self._started = 0.0
        self._ttfb = 0.0
        self._status = 0
        self._version = ""
        self._headers: dict[str, str] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses; both write and abort.
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._writable.set()
        if self._until_close is not None and self._state == "body":
            self._finish(memoryview(self._until_close))
            return
        if self._broken is not None:
            detail = f": {exc}" if exc else ""
            where = (
                "before a response"
                if self._state == "head" and not self._head_len
                else ("in the middle of the response")
            )
            self._end_with(TransportError(f"connection closed by the server {where}{detail}"))

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    def get_buffer(self, sizehint: int) -> memoryview:
        if self._state == "head":
            if self._head_len >= HEADER_LIMIT:
                return self._scratch
            return self._head_view[self._head_len :]
        if self._state == "body" and self._body_view is not None:
            return self._body_view[self._received :]
        return self._scratch

    def buffer_updated(self, nbytes: int) -> None:
        self.progress += 1
        try:
            if self._state == "head":
                self._head_received(nbytes)
            elif self._state == "body":
                self._body_received(nbytes)
            else:
                self.reusable = False
        except TransportError as exc:
            self._fail(exc)

    def _head_received(self, nbytes: int) -> None:
        if self._head_len == 0:
            self._ttfb = time.perf_counter() - self._started
        if self._head_len >= HEADER_LIMIT:
            raise TransportError(f"response headers larger than {HEADER_LIMIT} bytes")
        start = max(0, self._head_len - 3)
        self._head_len += nbytes
        end = self._head.find(b"\r\n\r\n", start, self._head_len)
        if end < 0:
            return
        version, status, headers = _parse_head(bytes(self._head[:end]))
        extra = self._head_view[end + 4 : self._head_len]
        if 100 <= status < 200:
            rest = bytes(extra)
            self._head_len = 0
            if rest:
                self._head[: len(rest)] = rest
                self._head_received(len(rest))
            return
        self._version, self._status, self._headers = version, status, headers
        if version == "1.0" or "close" in headers.get("connection", "").lower():
            self.reusable = False
        self._state = "body"
        if self._is_head or status in NO_BODY_STATUSES:
            self._body_len = 0
            self._body_view = memoryview(b"")
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            self._chunked = ChunkedDecoder()
        elif "content-length" in headers:
            try:
                self._body_len = int(headers["content-length"])
            except ValueError:
                raise TransportError(f"bad Content-Length {headers['content-length']!r}") from None
            into = self._into
            if into is not None and len(into) >= self._body_len:
                self._body_view = memoryview(into)[: self._body_len]
            else:
                self._body_view = memoryview(bytearray(self._body_len))
        else:
            self.reusable = False
            self._until_close = bytearray()
        if extra:
            self._accept_body(extra)
        elif self._body_view is not None and self._body_len == 0:
            self._finish(self._body_view)

    def _accept_body(self, data: memoryview) -> None:
        """Body bytes that arrived in the header buffer or the scratch buffer."""
        if self._chunked is not None:
            self._chunked.feed(data)
            if self._chunked.done:
                self._finish(memoryview(self._chunked.body))
        elif self._until_close is not None:
            self._until_close += data
        else:
            assert self._body_view is not None
            take = min(len(data), self._body_len - self._received)
            self._body_view[self._received : self._received + take] = data[:take]
            if take < len(data):
                self.reusable = False
            self._received += take
            if self._received == self._body_len:
                self._finish(self._body_view)

    def _body_received(self, nbytes: int) -> None:
        if self._chunked is None and self._until_close is None and self._body_view is not None:
            self._received += nbytes
            if self._received == self._body_len:
                self._finish(self._body_view)
        else:
            self._accept_body(self._scratch[:nbytes])

    def _finish(self, body: memoryview) -> None:
        answered = self._answered
        self._state = "done"
        self._answered = self._broken = None
        if answered is not None:
            self._watch.discard(self)
            answered(
                Response(self._status, self._headers, body, f"HTTP/{self._version}", self._ttfb)
            )

    def _end_with(self, exc: TransportError) -> None:
        broken = self._broken
        self._answered = self._broken = None
        if broken is not None:
            self._watch.discard(self)
            broken(exc)

    def _fail(self, exc: TransportError) -> None:
        self.reusable = False
        self._end_with(exc)
        if self.transport is not None:
            self.transport.abort()

    def _begin(
        self,
        is_head: bool,
        into: bytearray | memoryview | None,
        answered: Answered,
        broken: Broken,
    ) -> asyncio.Transport:
        """Ready for a request's response; the transport to write the request on."""
        self._reset()
        self.progress = 0
        self._answered, self._broken = answered, broken
        self._state = "head"
        self._is_head = is_head
        self._into = into
        self._started = time.perf_counter()
        transport = self.transport
        assert transport is not None
        if transport.is_closing():
            raise TransportError("connection closed by the server before the request")
        return transport

    def send(self, pool: Http1Transport, request: _Request, reused: bool) -> None:
        """Write `request` whole (a small body: the transport buffers what the socket does not
        take yet) and return; the idle watch times the response out. The connection goes back
        to `pool` before the request's own callback runs (which may send the next on it)."""
        head, body, is_head, into, _, _ = request
        self._sent = (pool, request, reused)
        transport = self._begin(is_head, into, self._sent_answered, self._sent_broken)
        if sum(map(len, body)) <= JOIN_BELOW:
            transport.write(b"".join((head, *body)))
        else:
            transport.write(head)
            for segment in body:
                transport.write(segment)
        self._watch.add(self)

    def _sent_answered(self, response: Response) -> None:
        pool, request, _ = self._sent
        pool.returned(self)
        request[4](response)

    def _sent_broken(self, exc: TransportError) -> None:
        pool, request, reused = self._sent
        self.close()
        if reused and not self.progress:
            pool.send_connected(request)
        else:
            request[5](exc)

    async def exchange(
        self,
        head: bytes,
        body: Sequence[Buffer],
        is_head: bool,
        into: bytearray | memoryview | None,
    ) -> Response:
        waiter: asyncio.Future[Response] = self._loop.create_future()

        def answered(response: Response) -> None:
            # A task cancelled while it awaited has its waiter cancelled before it runs again.
            if not waiter.done():
                waiter.set_result(response)

        def broken(exc: TransportError) -> None:
            if not waiter.done():
                waiter.set_exception(exc)
                # Whoever awaits the waiter still gets it; when no one does (a timeout
                # already raised), asyncio must not log it as never retrieved.
                waiter.exception()

        transport = self._begin(is_head, into, answered, broken)
        timeout = self._watch.timeout
        transport.write(head)
        for segment in body:
            view = memoryview(segment).cast("B")
            for offset in range(0, len(view), WRITE_PIECE):
                if not self._writable.is_set() and not waiter.done():
                    await self._wait_progress(self._writable.wait(), waiter, timeout)
                # Checked after the wait: the server may have closed the connection meanwhile
                # (a write to a closed transport raises, where the waiter says why).
                if waiter.done() or self.closed or transport.is_closing():
                    break
                transport.write(view[offset : offset + WRITE_PIECE])
        if not waiter.done() and not self._writable.is_set() and not self.closed:
            await self._wait_progress(self._writable.wait(), waiter, timeout)
        self._watch.add(self)
        try:
            return await waiter
        finally:
            if self._answered is not None:
                # No answer came (the task was cancelled): the response, if any, is no one's.
                self._watch.discard(self)
                self._answered = self._broken = None
                self.reusable = False
                waiter.cancel()

    async def _wait_progress(
        self, awaitable: Awaitable[T], waiter: asyncio.Future[Response], timeout: float
    ) -> T | None:
        """Await `awaitable` (room to write more of a body) while the connection keeps making
        progress within `timeout`; an early answer in `waiter` ends the wait."""
        task = asyncio.ensure_future(awaitable)
        either: set[asyncio.Future[Any]] = {task, waiter}
        try:
            while True:
                before = self.progress
                done, _ = await asyncio.wait(
                    either, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
                if task in done:
                    return task.result()
                if waiter in done:
                    waiter.result()
                    return None
                if self.progress == before:
                    error = RequestTimeout(f"no response data for {timeout:g} s")
                    self._fail(error)
                    raise error
        finally:
            if not task.done():
                task.cancel()

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.close()


class _IdleWatch:
    """Fails a response with RequestTimeout once `timeout` passes with no data arriving on its
    connection. One timer per pool sweeps the connections awaiting a response every quarter
    timeout, at most a second apart: a timer armed and cancelled per request was a measurable
    share of a small request's CPU. A stalled response fails between `timeout` and `timeout`
    plus a quarter of it or a second, whichever is less."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._period = min(timeout / 4, 1.0)
        self._awaiting: dict[_Connection, tuple[int, float]] = {}
        """Each connection awaiting a response: its progress count when last seen to change."""
        self._timer: asyncio.TimerHandle | None = None

    def add(self, connection: _Connection) -> None:
        self._awaiting[connection] = (connection.progress, time.monotonic())
        if self._timer is None:
            self._timer = connection._loop.call_later(self._period, self._sweep)

    def discard(self, connection: _Connection) -> None:
        self._awaiting.pop(connection, None)

    def _sweep(self) -> None:
        self._timer = None
        now = time.monotonic()
        stalled = []
        for connection, (seen, since) in self._awaiting.items():
            if connection.progress != seen:
                self._awaiting[connection] = (connection.progress, now)
            elif now - since >= self.timeout:
                stalled.append(connection)
        for connection in stalled:
            del self._awaiting[connection]
            connection._fail(RequestTimeout(f"no response data for {self.timeout:g} s"))
        if self._awaiting:
            loop = next(iter(self._awaiting))._loop
            self._timer = loop.call_later(self._period, self._sweep)


_Request = tuple[bytes, Sequence[Buffer], bool, "bytearray | memoryview | None", Answered, Broken]
"""A request `send` writes: head, body, whether it is a HEAD, the body's buffer, its callbacks."""


class Http1Transport:
    """A pool of keep-alive HTTP/1.1 connections to one endpoint."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        address: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        max_connections: int = 256,
        connect_timeout: float = 10.0,
        timeout: float = 30.0,
        local_address: str | None = None,
    ) -> None:
        self.host = host
        self._address = address or host
        """Where connections go: `host` itself, or one of its addresses (TLS still verifies
        `host`, and the Host header names it)."""
        self._local = (local_address, 0) if local_address else None
        self.port = port
        self._ssl = ssl_context
        self._host_header = host if port in (80, 443) else f"{host}:{port}"
        self._slots = asyncio.Semaphore(max_connections)
        self._idle: list[_Connection] = []
        self._connect_timeout = connect_timeout
        self._watch = _IdleWatch(timeout)
        self._connecting: set[asyncio.Task[None]] = set()
        """Connections opening for requests sent without a task (`send`)."""
        self.connections_opened = 0

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._connect_timeout):
                _, conn = await loop.create_connection(
                    lambda: _Connection(self._watch),
                    self._address,
                    self.port,
                    ssl=self._ssl,
                    server_hostname=self.host if self._ssl else None,
                    local_addr=self._local,
                )
        except TimeoutError:
            raise ConnectError(
                f"timed out connecting to {self.host}:{self.port} after {self._connect_timeout:g} s"
            ) from None
        except ssl.SSLCertVerificationError as exc:
            raise CertificateError(
                f"the TLS certificate of {self.host}:{self.port} is not trusted: "
                f"{exc.verify_message or exc.reason}"
            ) from None
        except ssl.SSLError as exc:
            raise ConnectError(
                f"TLS handshake with {self.host}:{self.port} failed: {exc}"
            ) from None
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise ConnectError(f"cannot connect to {self.host}:{self.port}: {reason}") from None
        self.connections_opened += 1
        return conn

    def _take_idle(self) -> _Connection | None:
        while self._idle:
            conn = self._idle.pop()
            if not conn.closed:
                return conn
        return None

    def _head(self, method: str, target: str, headers: dict[str, str], length: int) -> bytes:
        fields = "".join([f"{k}: {v}\r\n" for k, v in headers.items()])
        if length or method in ("PUT", "POST"):
            fields += f"Content-Length: {length}\r\n"
        return f"{method} {target} HTTP/1.1\r\nHost: {self._host_header}\r\n{fields}\r\n".encode(
            "latin-1"
        )

    async def request(
        self,
        method: str,
        target: str,
        headers: dict[str, str],
        body: Sequence[Buffer] = (),
        into: bytearray | memoryview | None = None,
    ) -> Response:
        length = sum(memoryview(b).nbytes for b in body)
        head = self._head(method, target, headers, length)
        async with self._slots:
            conn = self._take_idle()
            reused = conn is not None
            if conn is None:
                conn = await self._connect()
            try:
                response = await conn.exchange(head, body, method == "HEAD", into)
            except TransportError:
                conn.close()
                if not reused or conn.progress:
                    raise
                conn = await self._connect()
                try:
                    response = await conn.exchange(head, body, method == "HEAD", into)
                except BaseException:
                    conn.close()
                    raise
            except BaseException:
                conn.close()
                raise
            if conn.reusable and not conn.closed:
                self._idle.append(conn)
            else:
                conn.close()
            return response

    def send(
        self,
        method: str,
        target: str,
        headers: dict[str, str],
        body: Sequence[Buffer],
        into: bytearray | memoryview | None,
        answered: Answered,
        broken: Broken,
    ) -> None:
        """`request` without a task: written now on an idle connection, or once a new one has
        connected (a task per connection, not per request); the response reaches `answered`
        from the protocol's callback. `body` is written whole: keep it small. As with
        `request`, a reused connection the server closed while it sat idle is tried once more
        on a new one."""
        head = self._head(method, target, headers, sum(memoryview(b).nbytes for b in body))
        request = (head, body, method == "HEAD", into, answered, broken)
        conn = self._take_idle()
        if conn is None:
            self.send_connected(request)
        else:
            self._send_on(conn, request, True)

    def _send_on(self, conn: _Connection, request: _Request, reused: bool) -> None:
        try:
            conn.send(self, request, reused)
        except TransportError as exc:
            conn._sent_broken(exc)

    def returned(self, conn: _Connection) -> None:
        """A connection whose response came: kept for the next request, or closed."""
        if conn.reusable and not conn.closed:
            self._idle.append(conn)
        else:
            conn.close()

    def send_connected(self, request: _Request) -> None:
        """`request` sent on a new connection, once it has connected."""

        async def connect() -> None:
            try:
                conn = await self._connect()
            except TransportError as exc:
                request[-1](exc)
                return
            self._send_on(conn, request, False)

        task = asyncio.ensure_future(connect())
        self._connecting.add(task)
        task.add_done_callback(self._connecting.discard)

    async def aclose(self) -> None:
        for task in self._connecting:
            task.cancel()
        while self._idle:
            self._idle.pop().close()
