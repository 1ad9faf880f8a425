"""The bulk HTTP/1.1 client, tested as a library against real servers on loopback."""

from __future__ import annotations

import asyncio
import hashlib
import ssl
import time
from collections.abc import Awaitable, Callable

import pytest
import trustme
import uvloop
from conftest import make_client

from s3dlio_ray._internal.storage.s3.errors import S3ConnectionError
from s3dlio_ray._internal.storage.s3.http1 import ChunkedDecoder, Http1Transport
from s3dlio_ray._internal.storage.s3.transport import (
    CertificateError,
    ConnectError,
    RequestTimeout,
    TransportError,
)

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@pytest.fixture(autouse=True, params=["asyncio", "uvloop"])
def event_loop_kind(request):
    """Every test on both loops: Ray runs the actors' engines on uvloop when it is installed
    (it is a dependency), and the client must not depend on asyncio's own transports."""
    if request.param == "uvloop":
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    yield request.param
    asyncio.set_event_loop_policy(None)


async def read_request(reader: asyncio.StreamReader) -> tuple[str, dict[str, str], bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return lines[0], headers, body


def serve(handler: Handler, ssl_context: ssl.SSLContext | None = None):
    """Run `handler` per connection on a loopback server; yields (port, connection count)."""

    class Server:
        connections = 0

        async def __aenter__(self):
            async def on_connect(reader, writer):
                Server.connections += 1
                try:
                    await handler(reader, writer)
                except (asyncio.IncompleteReadError, ConnectionError):
                    pass
                finally:
                    writer.close()

            self.server = await asyncio.start_server(on_connect, "127.0.0.1", 0, ssl=ssl_context)
            self.port = self.server.sockets[0].getsockname()[1]
            return self

        async def __aexit__(self, *exc):
            self.server.close()

    return Server()


async def echo_forever(reader, writer):
    while True:
        line, _headers, body = await read_request(reader)
        digest = hashlib.sha256(body).hexdigest().encode()
        payload = b"" if line.startswith("HEAD") else digest
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nX-Line: %s\r\n\r\n%s"
            % (len(digest), line.encode(), payload)
        )
        await writer.drain()


def test_keep_alive_reuses_one_connection_and_fills_the_callers_buffer():
    async def main():
        async with serve(echo_forever) as server:
            client = Http1Transport("127.0.0.1", server.port)
            buffer = bytearray(100)
            for _ in range(3):
                response = await client.request("GET", "/a?b=c", {}, into=buffer)
                assert response.status == 200
                assert response.headers["x-line"] == "GET /a?b=c HTTP/1.1"
                assert response.body.obj is buffer
                assert bytes(response.body) == hashlib.sha256(b"").hexdigest().encode()
            assert client.connections_opened == 1 and server.connections == 1
            await client.aclose()

    asyncio.run(main())


def test_a_server_that_closes_while_the_body_is_sent_is_a_transport_error():
    """An endpoint killed in the middle of an upload: the next write must not meet a closed
    transport (uvloop raises RuntimeError there); the request ends as a transport error the
    client retries."""

    async def close_after_the_head(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        writer.transport.abort()

    async def main():
        async with serve(close_after_the_head) as server:
            client = Http1Transport("127.0.0.1", server.port)
            body = [bytes(1 << 20)] * 64
            for _ in range(5):
                with pytest.raises(TransportError, match="connection closed by the server"):
                    await client.request("PUT", "/b/k", {"Content-Length": str(64 << 20)}, body)
            await client.aclose()

    asyncio.run(main())


def test_large_body_from_segments_arrives_intact():
    parts = [bytes(range(256)) * 40_000, memoryview(b"x" * 5_000_000)[7:], b"tail"]
    expected = hashlib.sha256(b"".join(bytes(p) for p in parts)).hexdigest()

    async def main():
        async with serve(echo_forever) as server:
            client = Http1Transport("127.0.0.1", server.port)
            response = await client.request("PUT", "/big", {}, body=parts)
            assert bytes(response.body).decode() == expected
            await client.aclose()

    asyncio.run(main())


def test_head_response_has_no_body_and_keeps_the_connection():
    async def main():
        async with serve(echo_forever) as server:
            client = Http1Transport("127.0.0.1", server.port)
            response = await client.request("HEAD", "/x", {})
            assert response.status == 200 and len(response.body) == 0
            assert response.headers["content-length"] == "64"
            response = await client.request("GET", "/y", {})
            assert len(response.body) == 64
            assert client.connections_opened == 1
            await client.aclose()

    asyncio.run(main())


def test_chunked_response_is_decoded():
    async def handler(reader, writer):
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for piece in (b"hello ", b"chunked ", b"world"):
            writer.write(b"%x;ext=1\r\n%s\r\n" % (len(piece), piece))
            await writer.drain()
            await asyncio.sleep(0.01)
        writer.write(b"0\r\nX-Trailer: 1\r\n\r\n")
        await writer.drain()
        await reader.read()

    async def main():
        async with serve(handler) as server:
            client = Http1Transport("127.0.0.1", server.port)
            response = await client.request("GET", "/", {})
            assert bytes(response.body) == b"hello chunked world"
            await client.aclose()

    asyncio.run(main())


def test_chunked_decoder_fed_one_byte_at_a_time():
    raw = b"5\r\nhello\r\n1A\r\n" + b"z" * 26 + b"\r\n0\r\n\r\n"
    decoder = ChunkedDecoder()
    for i in range(len(raw)):
        assert not decoder.done
        decoder.feed(raw[i : i + 1])
    assert decoder.done and bytes(decoder.body) == b"hello" + b"z" * 26


def test_malformed_chunk_size_is_an_error():
    with pytest.raises(TransportError, match="bad chunk size"):
        ChunkedDecoder().feed(b"zz\r\n")


def test_body_delimited_by_close():
    async def handler(reader, writer):
        await read_request(reader)
        writer.write(b"HTTP/1.0 200 OK\r\n\r\nuntil the end")
        await writer.drain()

    async def main():
        async with serve(handler) as server:
            client = Http1Transport("127.0.0.1", server.port)
            response = await client.request("GET", "/", {})
            assert bytes(response.body) == b"until the end"
            await client.aclose()

    asyncio.run(main())


def test_connection_closed_mid_body_is_an_error_not_a_short_body():
    async def handler(reader, writer):
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 400)
        await writer.drain()

    async def main():
        async with serve(handler) as server:
            client = Http1Transport("127.0.0.1", server.port)
            with pytest.raises(TransportError, match="middle of the response"):
                await client.request("GET", "/", {})
            await client.aclose()

    asyncio.run(main())


def test_stalled_response_times_out():
    async def handler(reader, writer):
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nxx")
        await writer.drain()
        await asyncio.sleep(10)

    async def main():
        async with serve(handler) as server:
            client = Http1Transport("127.0.0.1", server.port, timeout=0.3)
            started = time.perf_counter()
            with pytest.raises(RequestTimeout):
                await client.request("GET", "/", {})
            assert 0.3 <= time.perf_counter() - started < 2
            await client.aclose()

    asyncio.run(main())


def test_a_slow_response_that_keeps_arriving_is_not_timed_out():
    """The timeout is idle time, not the response's whole time: a body trickling in for four
    timeouts arrives whole."""

    async def handler(reader, writer):
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n")
        for _ in range(12):
            await asyncio.sleep(0.1)
            writer.write(b"x")
            await writer.drain()

    async def main():
        async with serve(handler) as server:
            client = Http1Transport("127.0.0.1", server.port, timeout=0.3)
            response = await client.request("GET", "/", {})
            assert bytes(response.body) == b"x" * 12
            await client.aclose()

    asyncio.run(main())


@pytest.mark.integration
def test_the_response_timeout_starts_once_the_body_is_sent():
    """A PUT on a slow link takes many timeouts to send, and is no silent endpoint: the server
    reads a 64 MiB body steadily at about 8 MB/s (four timeouts) and answers at once, and the
    request succeeds. (What the kernel buffers after the last write, a few MiB here, drains in
    well under the timeout; the response timeout counts from that last write.)"""
    body = bytes(range(256)) * (64 * 2**20 // 256)

    async def handler(reader, writer):
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        received = hashlib.sha256()
        while length:
            piece = await reader.read(min(length, 64 * 1024))
            received.update(piece)
            length -= len(piece)
            await asyncio.sleep(0.008)
        digest = received.hexdigest().encode()
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(digest), digest))
        await writer.drain()

    async def main():
        async with serve(handler) as server:
            client = Http1Transport("127.0.0.1", server.port, timeout=2.0)
            started = time.perf_counter()
            response = await client.request("PUT", "/", {}, [body])
            assert bytes(response.body) == hashlib.sha256(body).hexdigest().encode()
            assert time.perf_counter() - started > 2 * 2.0  # the body took several timeouts
            await client.aclose()

    asyncio.run(main())


def test_refused_connection_is_a_connect_error():
    async def main():
        async with serve(echo_forever) as server:
            port = server.port
        client = Http1Transport("127.0.0.1", port)
        with pytest.raises(ConnectError, match=f"cannot connect to 127.0.0.1:{port}"):
            await client.request("GET", "/", {})

    asyncio.run(main())


def test_idle_connection_closed_by_server_is_replaced_silently():
    async def one_request_per_connection(reader, writer):
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        await asyncio.sleep(0.05)  # then close without saying Connection: close

    async def main():
        async with serve(one_request_per_connection) as server:
            client = Http1Transport("127.0.0.1", server.port)
            for _ in range(3):
                response = await client.request("GET", "/", {})
                assert bytes(response.body) == b"ok"
                await asyncio.sleep(0.1)
            assert server.connections == 3
            await client.aclose()

    asyncio.run(main())


def test_early_error_response_during_upload_is_returned():
    async def refuse(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 403 Forbidden\r\nContent-Length: 6\r\nConnection: close\r\n\r\ndenied"
        )
        await writer.drain()

    async def main():
        async with serve(refuse) as server:
            client = Http1Transport("127.0.0.1", server.port)
            response = await client.request("PUT", "/", {}, body=[bytes(30_000_000)])
            assert response.status == 403 and bytes(response.body) == b"denied"
            await client.aclose()

    asyncio.run(main())


def test_tls_with_a_private_ca():
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)

    async def main():
        async with serve(echo_forever, server_ctx) as server:
            client = Http1Transport("127.0.0.1", server.port, ssl_context=client_ctx)
            payload = [bytes(3_000_000)]
            response = await client.request("PUT", "/tls", {}, body=payload)
            assert bytes(response.body).decode() == hashlib.sha256(bytes(3_000_000)).hexdigest()
            response = await client.request("GET", "/again", {})
            assert response.status == 200 and client.connections_opened == 1
            await client.aclose()
            untrusting = Http1Transport(
                "127.0.0.1", server.port, ssl_context=ssl.create_default_context()
            )
            with pytest.raises(CertificateError, match=r"127\.0\.0\.1:\d+ is not trusted"):
                await untrusting.request("GET", "/", {})
            insecure = ssl.create_default_context()
            insecure.check_hostname, insecure.verify_mode = False, ssl.CERT_NONE
            lab = Http1Transport("127.0.0.1", server.port, ssl_context=insecure)
            assert (await lab.request("GET", "/lab", {})).status == 200
            await lab.aclose()

    asyncio.run(main())


def test_an_untrusted_certificate_is_not_retried_and_says_how_to_fix_it():
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)

    async def main():
        async with serve(echo_forever, server_ctx) as server:
            client = make_client(f"https://127.0.0.1:{server.port}")
            retries = []
            client.on_retry = lambda op, throttled: retries.append(op)
            with pytest.raises(
                S3ConnectionError, match=r"not trusted.*ca_bundle \(or AWS_CA_BUNDLE\)"
            ):
                await client.head_object("b", "k")
            await client.aclose()
            return retries

    assert asyncio.run(main()) == []


def test_a_name_spread_over_addresses_connects_there_and_is_verified_under_its_name():
    # resolve_host: the connection goes to one of the name's addresses, but TLS verifies the
    # certificate of the name, and the Host header carries it.
    ca = trustme.CA()
    cert = ca.issue_cert("gw.example")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    hosts = []

    async def host_header(reader, writer):
        _line, headers, _body = await read_request(reader)
        hosts.append(headers["host"])
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()

    async def main():
        async with serve(host_header, server_ctx) as server:
            named = Http1Transport(
                "gw.example", server.port, address="127.0.0.1", ssl_context=client_ctx
            )
            assert (await named.request("GET", "/", {})).status == 200
            await named.aclose()
            unnamed = Http1Transport("127.0.0.1", server.port, ssl_context=client_ctx)
            with pytest.raises(CertificateError, match="not trusted"):
                await unnamed.request("GET", "/", {})
        assert hosts == [f"gw.example:{server.port}"]

    asyncio.run(main())
