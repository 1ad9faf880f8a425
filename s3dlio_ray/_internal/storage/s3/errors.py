"""S3 errors: which are worth retrying, which mean throttling, and what to tell the user."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from s3dlio_ray._internal.model.errors import S3DlioRayError

RETRYABLE_STATUSES = frozenset({500, 502, 503, 504})
RETRYABLE_CODES = frozenset(
    {
        "SlowDown",
        "RequestTimeout",
        "InternalError",
        "ServiceUnavailable",
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
        "RequestTimeTooSkewed",
    }
)
THROTTLE_CODES = frozenset(
    {"SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded", "ServiceUnavailable"}
)

_HINTS = {
    "SignatureDoesNotMatch": "signature does not match: check your credentials "
    "(AWS_SECRET_ACCESS_KEY or the profile's secret key) and the region",
    "InvalidAccessKeyId": "the access key id is not known to the endpoint: check your credentials "
    "(AWS_ACCESS_KEY_ID or the profile)",
    "ExpiredToken": "the session token has expired: refresh your credentials",
    "InvalidToken": "the session token is not valid: check AWS_SESSION_TOKEN",
    "AccessDenied": "access denied: the credentials may not use this bucket "
    "(choose a bucket you own with --bucket, or check the credentials' permissions)",
    "AllAccessDisabled": "access to this bucket is disabled: choose another bucket with --bucket",
    "NoSuchBucket": "the bucket does not exist: create it or let the run create one "
    "(omit --bucket)",
    "BucketAlreadyExists": "the bucket name is taken by another account: choose another with "
    "--bucket",
    "InvalidBucketName": "the bucket name is not valid for S3 (3-63 lowercase letters, digits, "
    "dots and hyphens)",
    "NoSuchKey": "the object does not exist",
    "NoSuchUpload": "the multipart upload does not exist (aborted or completed already)",
    "EntityTooSmall": "a multipart part is smaller than the endpoint allows (5 MiB minimum)",
}


class S3Error(S3DlioRayError):
    """The endpoint answered with an error status."""

    def __init__(
        self, operation: str, resource: str, status: int, code: str, message: str = ""
    ) -> None:
        self.operation = operation
        self.resource = resource
        self.status = status
        self.code = code
        self.server_message = message
        hint = _HINTS.get(code) or message or "the endpoint refused the request"
        super().__init__(f"{operation} {resource}: {code or status} ({status}): {hint}")

    def __reduce__(self) -> tuple[type[S3Error], tuple[str, str, int, str, str]]:
        """Pickle with the fields (an actor's error crosses Ray to the driver intact)."""
        args = (self.operation, self.resource, self.status, self.code, self.server_message)
        return (type(self), args)

    @property
    def retryable(self) -> bool:
        return self.status in RETRYABLE_STATUSES or self.code in RETRYABLE_CODES

    @property
    def throttled(self) -> bool:
        return self.code in THROTTLE_CODES or self.status == 503


class S3ConnectionError(S3DlioRayError):
    """The endpoint could not be reached or stopped answering."""


def parse_error(operation: str, resource: str, status: int, body: bytes) -> S3Error:
    """An S3Error from an error response; tolerates empty or non-XML bodies (HEAD has none)."""
    code, message = "", ""
    if body:
        try:
            root = ET.fromstring(body)
        except ET.ParseError:
            root = None
        if root is not None:
            code = (root.findtext("{*}Code") or "").strip()
            message = (root.findtext("{*}Message") or "").strip()
    if not code:
        code = {403: "AccessDenied", 404: "NotFound", 503: "SlowDown"}.get(status, "")
    return S3Error(operation, resource, status, code, message[:200])
