"""HTTP/2 against moto under hypercorn: h2c with prior knowledge, and TLS with ALPN."""

from __future__ import annotations

import asyncio
import socket
import sys

import pytest
import trustme
from conftest import ROOT, TEST_CREDENTIALS, run_cli, server_process

from s3dlio_ray._internal.model.content import ObjectData
from s3dlio_ray._internal.model.endpoint import Endpoint
from s3dlio_ray._internal.model.errors import ConfigError
from s3dlio_ray._internal.settings.load import load_settings
from s3dlio_ray._internal.settings.schema import Settings
from s3dlio_ray._internal.storage.embedded import free_port
from s3dlio_ray._internal.storage.s3.client import ClientOptions, S3Client
from s3dlio_ray._internal.storage.s3.signing import Signer, resolve_credentials

MIB = 1024 * 1024


def h2_moto(*args: str):
    """moto under hypercorn (benchmarks/h2_moto.py), ready once its port accepts connections."""
    port = free_port()
    command = [sys.executable, str(ROOT / "benchmarks" / "h2_moto.py"), "--port", str(port), *args]
    return port, server_process(
        command,
        lambda: socket.create_connection(("127.0.0.1", port), timeout=0.5).close() is None,
        "hypercorn",
    )


@pytest.fixture(scope="module")
def h2c_url():
    port, server = h2_moto()
    with server:
        yield f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def tls_endpoint(tmp_path_factory):
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    folder = tmp_path_factory.mktemp("tls")
    certfile, keyfile, cafile = folder / "cert.pem", folder / "key.pem", folder / "ca.pem"
    cert.cert_chain_pems[0].write_to_path(certfile)
    for pem in cert.cert_chain_pems[1:]:
        pem.write_to_path(certfile, append=True)
    cert.private_key_pem.write_to_path(keyfile)
    ca.cert_pem.write_to_path(cafile)
    port, server = h2_moto("--certfile", str(certfile), "--keyfile", str(keyfile))
    with server:
        yield f"https://127.0.0.1:{port}", str(cafile)


def h2_client(url: str, ca_bundle: str | None = None) -> S3Client:
    signer = Signer(resolve_credentials(explicit=TEST_CREDENTIALS), "us-east-1")
    options = ClientOptions(endpoints=(Endpoint.parse(url),), http2=True, ca_bundle=ca_bundle)
    return S3Client(options, signer)


async def round_trip(client: S3Client, bucket: str) -> list[str]:
    data = ObjectData(3)
    versions = []
    await client.create_bucket(bucket)
    await client.put_object(bucket, "small", data.segments("small", 0, 100_000))
    await client.put_object_multipart(
        bucket, "multi", 12 * MIB, lambda o, n: data.segments("multi", o, n), 5 * MIB
    )
    for key, size in (("small", 100_000), ("multi", 12 * MIB)):
        result = await client.get_object(bucket, key, into=bytearray(size))
        data.verify(key, result.body, size)
        versions.append(result.http_version)
    ranged = await client.get_object(bucket, "multi", byte_range=(5, 104))
    assert bytes(ranged.body) == data.content("multi", 105)[5:]
    info = await client.head_object(bucket, "multi")
    assert info.size == 12 * MIB
    deleted, failed = await client.delete_objects(bucket, ["small", "multi"])
    assert (deleted, failed) == (2, [])
    await client.delete_bucket(bucket)
    await client.aclose()
    return versions


def test_h2c_prior_knowledge_round_trip(h2c_url):
    versions = asyncio.run(round_trip(h2_client(h2c_url), "h2c-bucket"))
    assert versions == ["HTTP/2", "HTTP/2"]


def test_tls_alpn_round_trip(tls_endpoint):
    url, ca = tls_endpoint
    versions = asyncio.run(round_trip(h2_client(url, ca), "h2-tls-bucket"))
    assert versions == ["HTTP/2", "HTTP/2"]


def test_http1_client_still_works_over_tls(tls_endpoint):
    url, ca = tls_endpoint
    signer = Signer(resolve_credentials(explicit=TEST_CREDENTIALS), "us-east-1")

    async def main():
        client = S3Client(ClientOptions(endpoints=(Endpoint.parse(url),), ca_bundle=ca), signer)
        await client.create_bucket("h1-tls-bucket")
        await client.put_object("h1-tls-bucket", "k", [b"hello"])
        result = await client.get_object("h1-tls-bucket", "k")
        await client.aclose()
        return result

    result = asyncio.run(main())
    assert bytes(result.body) == b"hello" and result.http_version == "HTTP/1.1"


def test_http2_is_refused_for_aws_when_the_settings_are_made():
    with pytest.raises(ConfigError, match="AWS S3 endpoints do not speak HTTP/2"):
        Settings(endpoint="https://s3.us-east-1.amazonaws.com", http2=True)
    with pytest.raises(ConfigError, match="AWS S3 endpoints do not speak HTTP/2"):
        load_settings(None, {"endpoint": "https://bucket.s3.amazonaws.com", "http2": True}, {})


def test_http2_against_a_store_that_speaks_only_http1_is_one_line_at_once(moto_url):
    """moto (like Ceph RGW) answers HTTP/1.1 only: h2c is refused at the first request, which
    is not a network failing and is not retried."""
    proc = run_cli(
        "run",
        "configs/quick.yaml",
        "--endpoint",
        moto_url,
        "--set",
        "http2=true",
        "--metrics-port",
        "off",
        "--objects",
        "2",
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    errors = [x for x in proc.stderr.splitlines() if x.startswith("s3dlio-ray: error: ")]
    assert len(errors) == 1 and "Traceback" not in proc.stderr
    assert "does not speak HTTP/2 over cleartext (h2c)" in errors[0]
    assert "leave http2 off (--set http2=false)" in errors[0]
    assert "(after 1 attempts;" in errors[0], "no retry can help"
