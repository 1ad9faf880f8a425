"""A fault-injecting HTTP/1.1 proxy for tests: it forwards each request to a real S3 server and
spoils the answer to the requests a rule picks, the way networks and stores fail in the field."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

Answer = tuple[bytes, bytes]
"""(response head up to and including the blank line, body)."""


@dataclass
class Request:
    method: str
    target: str
    head: bytes

    @property
    def of_an_object(self) -> bool:
        """A request for one of a run's objects (not a listing, a bucket or its journal)."""
        return "/obj-" in self.target

    @property
    def range_start(self) -> int | None:
        """Where a ranged GET starts, or None for a GET of the whole object."""
        value = _header(self.head, b"range")
        return int(value.split(b"=")[1].split(b"-")[0]) if value else None


@dataclass
class Rule:
    """Spoil the answer to the `nth` request `when` picks and the ones after it, `times` times
    at most (0: every time)."""

    fault: str
    when: Callable[[Request], bool]
    nth: int = 1
    times: int = 1
    matched: int = field(default=0)
    used: int = field(default=0)


def _header(head: bytes, name: bytes) -> bytes | None:
    match = re.search(rb"\r\n" + name + rb":\s*([^\r]*)", head, re.IGNORECASE)
    return match.group(1) if match else None


def _with_header(head: bytes, name: bytes, value: bytes) -> bytes:
    return re.sub(rb"(\r\n" + name + rb":\s*)[^\r]*", rb"\g<1>" + value, head, flags=re.IGNORECASE)


class FaultProxy:
    """Runs on its own thread and event loop, on `host` (a loopback address), in front of
    `target`; `peers` records the source address of every connection, `requests` counts what it
    answered, `seen` holds every request (method, target, head)."""

    def __init__(
        self, target: str, rules: list[Rule] | None = None, host: str = "127.0.0.1"
    ) -> None:
        target_host, port = target.removeprefix("http://").split(":")
        self._target = (target_host, int(port))
        self._host = host
        self.rules = rules or []
        self.applied: list[tuple[str, str, str]] = []
        self.peers: list[str] = []
        self.requests = 0
        self.seen: list[Request] = []
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()
        asyncio.run_coroutine_threadsafe(self._release(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _release(self) -> None:
        """Let stalled answers end and every connection's task finish before the loop stops."""
        self._released.set()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        if tasks:
            await asyncio.wait(tasks, timeout=5)

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://{self._host}:{self._server.sockets[0].getsockname()[1]}"

    def kill(self) -> None:
        """The endpoint dies: no more connections, and the open ones are cut."""
        asyncio.run_coroutine_threadsafe(self._kill(), self._loop).result(10)

    async def _start(self) -> None:
        self._released = asyncio.Event()
        self._server = await asyncio.start_server(self._serve, self._host, 0)

    async def _kill(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()

    def _pick(self, request: Request) -> str | None:
        for rule in self.rules:
            if not rule.when(request):
                continue
            rule.matched += 1
            if rule.matched >= rule.nth and (rule.times == 0 or rule.used < rule.times):
                rule.used += 1
                self.applied.append((rule.fault, request.method, request.target))
                return rule.fault
        return None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        self.peers.append(writer.get_extra_info("peername")[0])
        try:
            await self._answer_all(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the client (or a fault) cut the connection: nothing left to answer
        finally:
            self._writers.discard(writer)
            # Closed here, not left to the collector: with transports closed that way a new
            # connection was now and then never read (its request lost, about one in a thousand
            # through moto, whose "Connection: close" makes every request a new connection).
            writer.close()

    async def _answer_all(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            body = await reader.readexactly(int(_header(head, b"content-length") or 0))
            method, target = head.split(b" ", 2)[:2]
            request = Request(method.decode(), target.decode(), head)
            self.requests += 1
            self.seen.append(request)
            fault = self._pick(request)
            if fault == "kill":
                await self._kill()
                return
            if fault == "slow":
                await asyncio.sleep(0.2)
            if fault == "403":
                error = b"<Error><Code>AccessDenied</Code><Message>no</Message></Error>"
                writer.write(
                    b"HTTP/1.1 403 Forbidden\r\nContent-Length: %d\r\n\r\n%s" % (len(error), error)
                )
                await writer.drain()
                continue
            if fault == "503":
                error = b"<Error><Code>SlowDown</Code><Message>slow</Message></Error>"
                writer.write(
                    b"HTTP/1.1 503 Slow Down\r\nContent-Length: %d\r\n\r\n%s" % (len(error), error)
                )
                await writer.drain()
                continue
            answer_head, answer = await self._forward(head, body)
            if fault == "stall":
                await self._released.wait()
                return
            if fault in ("reset", "truncate"):
                writer.write(answer_head + answer[: len(answer) // 2])
                await writer.drain()
                if fault == "reset":
                    writer.transport.abort()
                else:
                    writer.close()
                return
            if fault == "flip" and answer:
                answer = bytes([answer[0] ^ 0xFF]) + answer[1:]
            if fault == "short" and answer:
                answer_head, answer = self._shorten(answer_head, answer)
            writer.write(answer_head + answer)
            await writer.drain()

    async def _forward(self, head: bytes, body: bytes) -> Answer:
        reader, writer = await asyncio.open_connection(*self._target)
        try:
            head = (
                _with_header(head, b"connection", b"close")
                if _header(head, b"connection")
                else head.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n", 1)
            )
            writer.write(head + body)
            await writer.drain()
            answer_head = await reader.readuntil(b"\r\n\r\n")
            length = _header(answer_head, b"content-length")
            if head.startswith(b"HEAD "):
                return answer_head, b""  # its Content-Length is the object's: no body follows
            answer = await (reader.readexactly(int(length)) if length else reader.read())
            return answer_head, answer
        finally:
            writer.close()

    @staticmethod
    def _shorten(head: bytes, body: bytes) -> Answer:
        """Half the bytes of a ranged answer, its headers made to agree (a valid-looking 206)."""
        match = re.search(rb"bytes (\d+)-(\d+)/(\d+)", _header(head, b"content-range") or b"")
        if match is None:
            return head, body
        start, end, total = (int(x) for x in match.groups())
        end = start + (end - start) // 2
        body = body[: end - start + 1]
        head = _with_header(head, b"content-range", b"bytes %d-%d/%d" % (start, end, total))
        return _with_header(head, b"content-length", str(len(body)).encode()), body
