"""Every error that can leave an actor crosses Ray (pickle) with its type, fields and message."""

from __future__ import annotations

import pickle

import pytest

from s3dlio_ray._internal.model.content import VerificationError
from s3dlio_ray._internal.model.errors import ConfigError, S3DlioRayError
from s3dlio_ray._internal.storage.s3.errors import S3ConnectionError, S3Error, parse_error
from s3dlio_ray._internal.storage.s3.signing import CredentialsError
from s3dlio_ray._internal.storage.s3.transport import (
    CertificateError,
    ConnectError,
    RequestTimeout,
    TransportError,
)

ERRORS = [
    S3DlioRayError("one line"),
    ConfigError("objects: expected an integer"),
    S3Error("PutObject", "s3://b/k", 403, "AccessDenied", "no"),
    parse_error("GetObject", "s3://b/k", 503, b"<Error><Code>SlowDown</Code></Error>"),
    S3ConnectionError("GetObject s3://b/k at http://h:1: cannot connect"),
    CredentialsError("no credentials"),
    VerificationError("k: byte 4 differs"),
    TransportError("body ended"),
    ConnectError("refused"),
    CertificateError("not trusted"),
    RequestTimeout("stalled"),
]


@pytest.mark.parametrize("error", ERRORS, ids=[type(e).__name__ for e in ERRORS])
def test_an_error_round_trips_through_pickle(error):
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is type(error) and str(again) == str(error)
    assert vars(again) == vars(error)
    if isinstance(error, S3DlioRayError):
        assert again.exit_code == error.exit_code
    if isinstance(error, S3Error):
        assert (again.code, again.status, again.retryable) == (
            error.code,
            error.status,
            error.retryable,
        )
