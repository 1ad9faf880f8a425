"""A TCP relay in front of a lab gateway that holds what clients send for a fixed delay.

The kernel here has no `netem`, so a store's distance is made in user space: each chunk a
client sends is forwarded `delay_ms` after it arrived, in order and without waiting for the
previous one (a delay line, not stop-and-wait), so a request's round trip grows by the delay
and the link's rate stays the rate. Answers flow back at once.

    python -m s3dlio_ray._internal.lab.relay LISTEN_HOST:PORT TARGET_HOST:PORT --delay-ms 20
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time

import uvloop

CHUNK = 256 * 1024
# Chunks held at most per direction (64 MiB): a reader that gets ahead waits.
HELD = 256


async def _forward(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay_s: float
) -> None:
    held: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(HELD)

    async def take() -> None:
        while chunk := await reader.read(CHUNK):
            await held.put((time.monotonic() + delay_s, chunk))
        await held.put((time.monotonic() + delay_s, b""))

    taking = asyncio.create_task(take())
    try:
        while True:
            due, chunk = await held.get()
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            if not chunk:
                if writer.can_write_eof():
                    writer.write_eof()
                return
            writer.write(chunk)
            await writer.drain()
    finally:
        taking.cancel()


async def _relay(
    client_reader: asyncio.StreamReader,
    client_writer: asyncio.StreamWriter,
    target: tuple[str, int],
    delay_s: float,
) -> None:
    try:
        server_reader, server_writer = await asyncio.open_connection(*target)
    except OSError:
        client_writer.close()
        return
    try:
        await asyncio.gather(
            _forward(client_reader, server_writer, delay_s),
            _forward(server_reader, client_writer, 0.0),
        )
    except (OSError, asyncio.IncompleteReadError):
        pass
    finally:
        for writer in (client_writer, server_writer):
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


async def serve(listen: tuple[str, int], target: tuple[str, int], delay_ms: float) -> None:
    server = await asyncio.start_server(
        lambda r, w: _relay(r, w, target, delay_ms / 1000), *listen, backlog=1024
    )
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("listen", help="HOST:PORT to listen on")
    parser.add_argument("target", help="HOST:PORT to forward to")
    parser.add_argument("--delay-ms", type=float, default=0.0)
    args = parser.parse_args()
    uvloop.run(serve(_address(args.listen), _address(args.target), args.delay_ms))


if __name__ == "__main__":
    main()
