"""An S3 endpoint, parsed once from its URL: the name it was given by (what TLS verifies, what the
Host header and the signature carry, what tells AWS apart), and where connections go, which is
one of that name's addresses when a run spreads over them (`resolve_host`). Keeping both means a
resolved endpoint is still recognised as AWS and still verified under its own name."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from s3dlio_ray._internal.model.errors import ConfigError

DEFAULT_PORTS = {"http": 80, "https": 443}


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host


@dataclass(frozen=True)
class Endpoint:
    scheme: str
    host: str
    """The name as given, lower case."""
    port: int
    address: str | None = None
    """Where connections go instead of resolving `host` (one of its addresses), or None."""

    @classmethod
    def parse(cls, url: str) -> Endpoint:
        parts = urlsplit(url.strip())
        if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
            raise ConfigError(f"endpoint: {url!r} is not an http:// or https:// URL")
        try:
            port = parts.port or DEFAULT_PORTS[parts.scheme]
        except ValueError:
            raise ConfigError(f"endpoint: {url!r} has no valid port") from None
        return cls(parts.scheme, parts.hostname.lower(), port)

    @classmethod
    def aws(cls, region: str) -> Endpoint:
        """AWS S3's regional endpoint, where a run with no endpoint goes."""
        return cls("https", f"s3.{region}.amazonaws.com", 443)

    def at(self, address: str) -> Endpoint:
        """This endpoint, its connections going to `address`."""
        return Endpoint(self.scheme, self.host, self.port, address)

    @property
    def url(self) -> str:
        """The endpoint as named: scheme, host and port."""
        return f"{self.scheme}://{_bracketed(self.host)}:{self.port}"

    @property
    def label(self) -> str:
        """What the run's figures are counted under: the URL connections go to (an address's,
        when the name was spread over its addresses)."""
        return f"{self.scheme}://{_bracketed(self.connect_host)}:{self.port}"

    @property
    def connect_host(self) -> str:
        return self.address or self.host

    @property
    def tls(self) -> bool:
        return self.scheme == "https"

    @property
    def is_aws(self) -> bool:
        return self.host == "amazonaws.com" or self.host.endswith(".amazonaws.com")
