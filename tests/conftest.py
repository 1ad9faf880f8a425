"""Shared real servers: one moto server and one Ray cluster per test session, on loopback."""

from __future__ import annotations

import os

# Ray reads this when imported: without it Ray binds the machine's external address, not loopback.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
import sys
import uuid
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from s3dlio_ray.embedded import EmbeddedS3
from s3dlio_ray.s3.client import ClientOptions, S3Client
from s3dlio_ray.s3.retry import RetryPolicy
from s3dlio_ray.s3.signing import Signer, StaticCredentials, resolve_credentials

ROOT = Path(__file__).resolve().parent.parent
TEST_CREDENTIALS = StaticCredentials("testing-key", "testing-secret")


@pytest.fixture(scope="session")
def moto_url():
    with EmbeddedS3() as server:
        yield server.url


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory):
    """A head and two worker nodes of one CPU each; the test process is connected as a driver."""
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(
        initialize_head=True,
        connect=True,
        head_node_args={
            "num_cpus": 1,
            "include_dashboard": False,
            "temp_dir": str(tmp_path_factory.mktemp("ray")),
        },
    )
    for _ in range(2):
        cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    yield cluster
    ray.shutdown()
    cluster.shutdown()


def boto3_client(url: str, credentials: StaticCredentials = TEST_CREDENTIALS):
    return boto3.client(
        "s3",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id=credentials.access_key_id,
        aws_secret_access_key=credentials.secret_access_key,
        config=Config(s3={"addressing_style": "path"}),
    )


@pytest.fixture(scope="session")
def boto3_s3(moto_url):
    return boto3_client(moto_url)


@pytest.fixture
def bucket(boto3_s3):
    name = f"test-{uuid.uuid4().hex[:12]}"
    boto3_s3.create_bucket(Bucket=name)
    return name


def make_client(url: str, **options) -> S3Client:
    options.setdefault("retry", RetryPolicy(max_attempts=2, base_delay_s=0.01))
    signer = Signer(resolve_credentials(explicit=TEST_CREDENTIALS), "us-east-1")
    return S3Client(ClientOptions(endpoint=url, **options), signer)


def cli_env(**extra: str) -> dict[str, str]:
    """The environment for running the command line in a subprocess, with test credentials."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "S3DLIO_"))}
    env.update(
        AWS_ACCESS_KEY_ID=TEST_CREDENTIALS.access_key_id,
        AWS_SECRET_ACCESS_KEY=TEST_CREDENTIALS.secret_access_key,
        AWS_CONFIG_FILE="/nonexistent",
        AWS_SHARED_CREDENTIALS_FILE="/nonexistent",
        PYTHONPATH=str(ROOT),
    )
    env.update(extra)
    return env


CLI = [sys.executable, "-m", "s3dlio_ray"]
