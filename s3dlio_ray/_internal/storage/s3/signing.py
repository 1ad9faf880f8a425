"""SigV4 signing (here) and credential discovery (botocore)."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping
from dataclasses import dataclass

import botocore.session
from botocore.credentials import Credentials, RefreshableCredentials
from botocore.exceptions import BotoCoreError, ProfileNotFound

from s3dlio_ray._internal.model.errors import ConfigError, S3DlioRayError

UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
DEFAULT_REGION = "us-east-1"


class CredentialsError(S3DlioRayError):
    """No usable credentials were found."""


@dataclass(frozen=True)
class StaticCredentials:
    """Explicit credentials; repr never shows the secret."""

    access_key_id: str
    secret_access_key: str
    session_token: str | None = None

    def __repr__(self) -> str:
        return "StaticCredentials(access_key_id=***, secret_access_key=***)"


def resolve_credentials(
    profile: str | None = None, explicit: StaticCredentials | None = None
) -> Credentials:
    """Explicit credentials, else botocore's chain (environment, shared files, profile, IMDS)."""
    if explicit is not None:
        return Credentials(
            explicit.access_key_id, explicit.secret_access_key, explicit.session_token
        )
    try:
        credentials = botocore.session.Session(profile=profile).get_credentials()
    except ProfileNotFound as exc:
        name = exc.kwargs.get("profile", profile)
        raise ConfigError(
            f"AWS profile {name!r} (aws_profile, AWS_PROFILE) is in neither the AWS config "
            "nor the credentials file (~/.aws/config, ~/.aws/credentials, or the files "
            "AWS_CONFIG_FILE and AWS_SHARED_CREDENTIALS_FILE name)"
        ) from None
    except BotoCoreError as exc:
        raise CredentialsError(f"cannot load AWS credentials: {exc}") from None
    if credentials is None:
        raise CredentialsError(
            "no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
            "or AWS_PROFILE (--aws-profile) with ~/.aws/credentials"
        )
    return credentials


def resolve_region(profile: str | None = None) -> str:
    try:
        region = botocore.session.Session(profile=profile).get_config_variable("region")
    except BotoCoreError:
        region = None
    return region or DEFAULT_REGION


def payload_sha256(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


EMPTY_PAYLOAD = payload_sha256(b"")


NOT_SIGNED = frozenset(
    {
        "baggage",
        "connection",
        "expect",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "traceparent",
        "tracestate",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "user-agent",
        "x-amzn-trace-id",
    }
)
"""Headers SigV4 leaves out of the signature (botocore's list: proxies and hops change them)."""


class Signer:
    """SigV4 for S3, over credentials botocore resolves and may refresh behind our back.

    Written here rather than taken from botocore because its signer costs most of a small
    request's CPU (a new AWSRequest and email-header objects, a URL parse and the signing key
    derived again for every request; BENCHMARKS.md, issue 13). This one derives the key once per
    day, region and secret, and builds the canonical request from the parts the client already
    has. tests/test_signing.py signs thousands of generated requests both ways and requires the
    same Authorization header byte for byte.
    """

    def __init__(self, credentials: Credentials, region: str, service: str = "s3") -> None:
        self._credentials = credentials
        refreshed = isinstance(credentials, RefreshableCredentials)
        self._frozen = None if refreshed else credentials.get_frozen_credentials()
        """Credentials that never change, frozen once; refreshable ones are asked each time."""
        self.region = region
        self._service = service
        self._key: tuple[str, str, _Mac | None] = ("", "", None)
        self._second = -1
        self._stamp = ""

    def _timestamp(self, now: float | None) -> str:
        """The request's X-Amz-Date, formatted once per second."""
        second = int(time.time() if now is None else now)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(second))
        return self._stamp

    def _signing_key(self, date: str, secret: str) -> _Mac:
        day, known, mac = self._key
        if mac is None or day != date or known != secret:
            key = _hmac(f"AWS4{secret}".encode(), date)
            for part in (self.region, self._service, "aws4_request"):
                key = _hmac(key, part)
            mac = _Mac(key)
            self._key = (date, secret, mac)
        return mac

    def sign(
        self,
        method: str,
        host: str,
        target: str,
        headers: Mapping[str, str],
        payload_hash: str,
        now: float | None = None,
    ) -> dict[str, str]:
        """Headers to send for `method target` to `host` (the Host header as sent): the given
        ones plus X-Amz-Date, X-Amz-Content-SHA256, a session's X-Amz-Security-Token and
        Authorization. `target` is the path and query as sent, already percent-encoded.

        Bulk bodies are sent as UNSIGNED-PAYLOAD (as the AWS SDKs do over TLS): hashing every
        byte would cost more CPU than moving it, and GET bodies are verified end to end anyway.
        """
        frozen = self._frozen or self._credentials.get_frozen_credentials()
        stamp = self._timestamp(now)
        signed = dict(headers)
        signed["X-Amz-Date"] = stamp
        signed["X-Amz-Content-SHA256"] = payload_hash
        if frozen.token:
            signed["X-Amz-Security-Token"] = frozen.token
        if headers:
            canonical_headers, signed_names = _canonical_headers(signed, host)
        else:
            # Most requests carry only the headers added here: their canonical form, sorted,
            # without the general path's lists and sort (a quarter of a signature's CPU).
            canonical_headers = (
                f"host:{host}\nx-amz-content-sha256:{payload_hash}\nx-amz-date:{stamp}\n"
            )
            signed_names = "host;x-amz-content-sha256;x-amz-date"
            if frozen.token:
                canonical_headers += f"x-amz-security-token:{' '.join(frozen.token.split())}\n"
                signed_names += ";x-amz-security-token"
        path, _, query = target.partition("?")
        canonical = (
            f"{method.upper()}\n{path}\n{_canonical_query(query)}\n{canonical_headers}\n"
            f"{signed_names}\n{payload_hash}"
        )
        date = stamp[:8]
        scope = f"{date}/{self.region}/{self._service}/aws4_request"
        digest = hashlib.sha256(canonical.encode()).hexdigest()
        to_sign = f"AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{digest}"
        key = self._signing_key(date, frozen.secret_key)
        signature = key.hexdigest(to_sign.encode())
        signed["Authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={frozen.access_key}/{scope}, "
            f"SignedHeaders={signed_names}, Signature={signature}"
        )
        return signed


def _canonical_headers(headers: Mapping[str, str], host: str) -> tuple[str, str]:
    """The canonical headers block and the signed header names, from every header to send."""
    values: dict[str, list[str]] = {}
    for name, value in headers.items():
        lower = name.lower()
        if lower not in NOT_SIGNED:
            values.setdefault(lower, []).append(" ".join(value.split()))
    values.setdefault("host", [host])
    names = sorted(values)
    return "".join(f"{n}:{','.join(values[n])}\n" for n in names), ";".join(names)


class _Mac:
    """HMAC-SHA256 under one key with its two padded key blocks hashed once: a day's signing
    key signs every request of the day, and `hmac.digest` would hash them again each time
    (0.9 against 2.1 us a signature, timeit)."""

    def __init__(self, key: bytes) -> None:
        block = key.ljust(64, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in block))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in block))

    def hexdigest(self, message: bytes) -> str:
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest()


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.digest(key, message.encode(), "sha256")


def _canonical_query(query: str) -> str:
    """The query's pairs sorted, each KEY=VALUE as sent (a bare key gets an empty value)."""
    if not query:
        return ""
    pairs = sorted(pair.partition("=")[::2] for pair in query.split("&"))
    return "&".join(f"{key}={value}" for key, value in pairs)
