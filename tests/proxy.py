"""A real TCP proxy for tests: adds latency to responses, can pass them through one shared link
of limited bandwidth, and records request lines."""

from __future__ import annotations

import asyncio
import re
import time

REQUEST_LINE = re.compile(rb"(GET|PUT|POST|DELETE|HEAD) (/\S*) HTTP/1\.1\r\n")


class TcpProxy:
    def __init__(
        self,
        host: str,
        port: int,
        response_delay_s: float = 0.0,
        response_bytes_per_s: float | None = None,
    ) -> None:
        self.target = (host, port)
        self.delay = response_delay_s
        self.bandwidth = response_bytes_per_s
        self._link_free_at = 0.0
        """When the shared link has sent everything booked on it (monotonic clock)."""
        self.request_lines: list[str] = []
        self._server: asyncio.AbstractServer | None = None
        self.port = 0

    async def start(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()

    async def _handle(self, client_r, client_w) -> None:
        try:
            server_r, server_w = await asyncio.open_connection(*self.target)
        except OSError:
            client_w.close()
            return
        await asyncio.gather(
            self._pump(client_r, server_w, record=True),
            self._pump(server_r, client_w, delay=self.delay, limited=True),
            return_exceptions=True,
        )

    async def _link(self, nbytes: int) -> None:
        """Wait for `nbytes` to pass the shared link: every response's bytes take their turn."""
        now = time.monotonic()
        start = max(now, self._link_free_at)
        self._link_free_at = start + nbytes / self.bandwidth
        await asyncio.sleep(self._link_free_at - now)

    async def _pump(
        self, reader, writer, record: bool = False, delay: float = 0.0, limited: bool = False
    ) -> None:
        tail = b""
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def delayed_writer() -> None:
            while True:
                arrived, data = await queue.get()
                if not data:
                    break
                wait = arrived + delay - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                if limited and self.bandwidth:
                    await self._link(len(data))
                writer.write(data)
                await writer.drain()
            writer.close()

        sender = asyncio.ensure_future(delayed_writer())
        try:
            while data := await reader.read(1 << 20):
                if record:
                    window = tail + data
                    self.request_lines += [
                        f"{m.group(1).decode()} {m.group(2).decode()}"
                        for m in REQUEST_LINE.finditer(window)
                        if m.end() > len(tail)
                    ]
                    tail = window[-300:]
                queue.put_nowait((time.monotonic(), data))
        finally:
            queue.put_nowait((0.0, b""))
            await sender
