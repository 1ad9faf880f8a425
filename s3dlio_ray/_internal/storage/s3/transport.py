"""What every transport answers and raises, so the client does not care which one it uses."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

Buffer = bytes | bytearray | memoryview


class TransportError(Exception):
    """The request did not get a complete HTTP response (connection, protocol or timeout)."""


class ConnectError(TransportError):
    """No connection could be made to the endpoint."""


class CertificateError(ConnectError):
    """The endpoint's TLS certificate is not trusted: retrying cannot help."""


class NoHttp2(TransportError):
    """The endpoint does not speak HTTP/2 over cleartext (h2c): retrying cannot help."""


class RequestTimeout(TransportError):
    """The endpoint stopped answering for longer than the timeout."""


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: memoryview
    http_version: str
    ttfb_s: float


class Transport(Protocol):
    async def request(
        self,
        method: str,
        target: str,
        headers: dict[str, str],
        body: Sequence[Buffer] = (),
        into: bytearray | memoryview | None = None,
    ) -> Response:
        """Send one request; a body answered with Content-Length is read into `into` if it fits."""
        ...

    async def aclose(self) -> None: ...
