"""HTTP/2 through httpx: h2c with prior knowledge on http://, ALPN on https://.

Optional and off by default: h2 framing is pure Python, and on this project's measurements it
moves bulk bodies at about half the speed of the HTTP/1.1 path (BENCHMARKS.md).
"""

from __future__ import annotations

import ssl
import time
from collections.abc import AsyncIterator, Sequence

import httpx

from s3dlio_ray._internal.storage.s3.transport import (
    Buffer,
    CertificateError,
    ConnectError,
    NoHttp2,
    RequestTimeout,
    Response,
    TransportError,
)

# httpcore slices the rest of a chunk after every DATA frame (a copy each time), so one large
# chunk costs quadratic time; pieces a few frames long keep that copy small.
H2_PIECE = 64 * 1024


async def _pieces(body: Sequence[Buffer]) -> AsyncIterator[bytes]:
    for segment in body:
        view = memoryview(segment).cast("B")
        for offset in range(0, len(view), H2_PIECE):
            yield bytes(view[offset : offset + H2_PIECE])


class Http2Transport:
    def __init__(
        self,
        base_url: str,
        *,
        ssl_context: ssl.SSLContext | None = None,
        max_connections: int = 256,
        connect_timeout: float = 10.0,
        timeout: float = 30.0,
        local_address: str | None = None,
    ) -> None:
        prior_knowledge = base_url.startswith("http://")
        self._h2c = prior_knowledge
        self._answered = False
        """Whether the endpoint ever answered: h2c refused at the first request is a store
        that speaks only HTTP/1.1, not a network failing."""
        self._client = httpx.AsyncClient(
            base_url=base_url,
            timeout=httpx.Timeout(timeout, connect=connect_timeout),
            transport=httpx.AsyncHTTPTransport(
                http2=True,
                http1=not prior_knowledge,
                verify=ssl_context if ssl_context is not None else True,
                limits=httpx.Limits(
                    max_connections=max_connections, max_keepalive_connections=max_connections
                ),
                local_address=local_address,
            ),
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
        if length:
            headers = {**headers, "Content-Length": str(length)}
        content = _pieces(body) if length else None
        request = self._client.build_request(method, target, headers=headers, content=content)
        request.url = request.url.copy_with(raw_path=target.encode("ascii"))
        started = time.perf_counter()
        try:
            response = await self._client.send(request, stream=True)
            ttfb = time.perf_counter() - started
            try:
                length = int(response.headers.get("content-length", "-1"))
                sink = (
                    memoryview(into)[:length]
                    if into is not None and 0 <= length <= len(into)
                    else None
                )
                if sink is None:
                    body_view = memoryview(await response.aread())
                else:
                    received = 0
                    async for chunk in response.aiter_raw():
                        if received + len(chunk) > length:
                            raise TransportError(f"body longer than its length {length}")
                        sink[received : received + len(chunk)] = chunk
                        received += len(chunk)
                    if received != length:
                        raise TransportError(f"body ended after {received} of {length} bytes")
                    body_view = sink
            finally:
                await response.aclose()
        except httpx.ConnectError as exc:
            if "CERTIFICATE_VERIFY_FAILED" in str(exc):
                raise CertificateError(f"the TLS certificate is not trusted: {exc}") from None
            raise ConnectError(f"cannot connect: {exc}") from None
        except httpx.TimeoutException as exc:
            raise RequestTimeout(f"request timed out: {exc}") from None
        except httpx.RemoteProtocolError as exc:
            if self._h2c and not self._answered:
                raise NoHttp2(
                    f"the endpoint does not speak HTTP/2 over cleartext (h2c): {exc}"
                ) from None
            raise TransportError(f"HTTP/2 request failed: {exc}") from None
        except httpx.HTTPError as exc:
            raise TransportError(f"HTTP/2 request failed: {exc}") from None
        self._answered = True
        return Response(
            response.status_code,
            {k.lower(): v for k, v in response.headers.items()},
            body_view,
            response.http_version,
            ttfb,
        )

    async def aclose(self) -> None:
        await self._client.aclose()
