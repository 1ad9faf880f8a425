"""SigV4 signing and credential discovery, both done by botocore."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import botocore.session
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import BotoCoreError

from s3dlio_ray.errors import S3DlioRayError

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


class _S3Auth(SigV4Auth):
    """SigV4 for S3: the path is signed as sent, the payload hash is the caller's choice."""

    def _normalize_url_path(self, path: str) -> str:
        return path


def payload_sha256(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


class Signer:
    """Signs requests with credentials that botocore may refresh behind our back."""

    def __init__(self, credentials: Credentials, region: str) -> None:
        self._credentials = credentials
        self.region = region

    def sign(
        self, method: str, url: str, headers: dict[str, str], payload_hash: str
    ) -> dict[str, str]:
        """Headers to send: the given ones plus X-Amz-Date, X-Amz-Content-SHA256, Authorization.

        Bulk bodies are sent as UNSIGNED-PAYLOAD (as the AWS SDKs do over TLS): hashing every
        byte would cost more CPU than moving it, and GET bodies are verified end to end anyway.
        """
        request = AWSRequest(method=method, url=url, headers=dict(headers))
        request.headers["X-Amz-Content-SHA256"] = payload_hash
        frozen = self._credentials.get_frozen_credentials()
        _S3Auth(frozen, "s3", self.region).add_auth(request)
        return dict(request.headers.items())
