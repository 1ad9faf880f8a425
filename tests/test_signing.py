"""The SigV4 signer against botocore's, the oracle: thousands of generated requests (keys of every
kind, query strings, headers, payload modes, session tokens, regions, hosts) signed both ways
must give the same headers byte for byte."""

from __future__ import annotations

import datetime
import random
import string
import time
from urllib.parse import quote

import botocore.auth
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials, RefreshableCredentials

from s3dlio_ray._internal.storage.s3.client import _query
from s3dlio_ray._internal.storage.s3.signing import UNSIGNED_PAYLOAD, Signer, payload_sha256

KEY_CHARACTERS = string.ascii_letters + string.digits + " !\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~é日本"
QUERIES = [
    {},
    {"uploads": ""},
    {"partNumber": "7", "uploadId": "2~Zx/y+z=="},
    {"list-type": "2", "prefix": "a b/c", "max-keys": "1000", "delimiter": "/"},
    {"list-type": "2", "continuation-token": "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM="},
    {"delete": ""},
    {"location": ""},
    {"uploadId": "abc", "x-id": "CompleteMultipartUpload"},
]
OPTIONAL_HEADERS = [
    ("Range", lambda r: f"bytes={r.randrange(10**9)}-{r.randrange(10**9, 2 * 10**9)}"),
    ("Content-Length", lambda r: str(r.randrange(10**12))),
    ("Content-Type", lambda r: r.choice(["application/octet-stream", "application/xml"])),
    ("x-amz-checksum-mode", lambda r: "ENABLED"),
    ("Content-MD5", lambda r: "1B2M2Y8AsgTpgAmY7PhCfg=="),
    ("User-Agent", lambda r: "s3dlio-ray/0.1  python"),
    ("x-amz-meta-note", lambda r: "  spaces   inside\tand around  "),
    ("Expect", lambda r: "100-continue"),
]


class BotocoreS3Auth(SigV4Auth):
    """botocore's SigV4 with the path signed as sent, as S3 wants it."""

    def _normalize_url_path(self, path: str) -> str:
        return path


def botocore_headers(credentials, region, method, url, headers, payload_hash, monkeypatch, now):
    fixed = datetime.datetime.fromtimestamp(now, datetime.UTC).replace(tzinfo=None)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: fixed)
    request = AWSRequest(method=method, url=url, headers=dict(headers))
    request.headers["X-Amz-Content-SHA256"] = payload_hash
    BotocoreS3Auth(credentials.get_frozen_credentials(), "s3", region).add_auth(request)
    return dict(request.headers.items())


def generated_request(r: random.Random):
    key = "".join(r.choice(KEY_CHARACTERS) for _ in range(r.randrange(1, 40)))
    bucket = r.choice(["bench", "my-bucket.with.dots", "b1"])
    method = r.choice(["GET", "PUT", "HEAD", "DELETE", "POST", "get"])
    query = r.choice(QUERIES)
    path = f"/{bucket}/" + quote(key, safe="/~") if r.random() < 0.9 else f"/{bucket}"
    target = path + ("?" + _query(query) if query else "")
    host = r.choice(["127.0.0.1:9000", "s3.us-west-2.amazonaws.com", "minio.lab", "gw7:443"])
    headers = {name: make(r) for name, make in OPTIONAL_HEADERS if r.random() < 0.35}
    payload = r.choice([UNSIGNED_PAYLOAD, payload_sha256(b""), payload_sha256(r.randbytes(64))])
    return method, host, target, headers, payload


@pytest.mark.parametrize("token", [None, "FQoGZXIvYXdzE//////////wEaDNs+session/token=="])
def test_thousands_of_requests_sign_exactly_as_botocore_signs_them(token, monkeypatch):
    r = random.Random(1234 if token else 4321)
    credentials = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token)
    for _ in range(1500):
        region = r.choice(["us-east-1", "eu-central-1", "ap-southeast-2"])
        signer = Signer(credentials, region)
        now = r.uniform(1.6e9, 2.0e9)
        method, host, target, headers, payload = generated_request(r)
        ours = signer.sign(method, host, target, headers, payload, now=now)
        url = f"http://{host}{target}"
        theirs = botocore_headers(
            credentials, region, method, url, headers, payload, monkeypatch, now
        )
        assert ours == theirs, (method, host, target, headers)


def test_the_signing_key_is_derived_once_a_day_and_follows_rotated_secrets(monkeypatch):
    secrets = iter(["first-secret", "second-secret"])

    def refresh():
        expiry = datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1)
        return {
            "access_key": "AKID",
            "secret_key": next(secrets),
            "token": None,
            "expiry_time": expiry.isoformat(),
        }

    credentials = RefreshableCredentials.create_from_metadata(refresh(), refresh, "test")
    signer = Signer(credentials, "us-east-1")
    day = time.mktime((2026, 11, 28, 12, 0, 0, 0, 0, 0))
    signer.sign("GET", "h:9000", "/b/k", {}, UNSIGNED_PAYLOAD, now=day)
    first_key = signer._key
    signer.sign("GET", "h:9000", "/b/k2", {}, UNSIGNED_PAYLOAD, now=day + 60)
    assert signer._key is first_key  # same day, same secret: not derived again
    signer.sign("GET", "h:9000", "/b/k", {}, UNSIGNED_PAYLOAD, now=day + 86400)
    assert signer._key[0] != first_key[0]
    credentials._refresh_using = refresh
    credentials._expiry_time = datetime.datetime.now(datetime.UTC)
    headers = signer.sign("GET", "h:9000", "/b/k", {}, UNSIGNED_PAYLOAD, now=day + 86400)
    assert signer._key[1] == "second-secret"
    url = "http://h:9000/b/k"
    expected = botocore_headers(
        credentials, "us-east-1", "GET", url, {}, UNSIGNED_PAYLOAD, monkeypatch, day + 86400
    )
    assert headers == expected
