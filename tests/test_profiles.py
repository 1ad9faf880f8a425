import pytest

from s3dlio_ray._internal.model.endpoint import Endpoint
from s3dlio_ray._internal.model.errors import ConfigError
from s3dlio_ray._internal.settings.schema import Settings
from s3dlio_ray._internal.tuning.profiles import (
    AWS,
    HIGH_PERFORMANCE,
    Direction,
    select_profile,
    start_concurrency,
)


@pytest.mark.parametrize(
    ("endpoint", "expected"),
    [
        (None, AWS),
        ("https://s3.us-west-2.amazonaws.com", AWS),
        ("https://bucket.s3.amazonaws.com", AWS),
        ("http://127.0.0.1:9000", HIGH_PERFORMANCE),
        ("https://minio.example.com", HIGH_PERFORMANCE),
        ("https://notamazonaws.com", HIGH_PERFORMANCE),
    ],
)
def test_auto_profile_follows_the_endpoint(endpoint, expected):
    assert select_profile("auto", endpoint and Endpoint.parse(endpoint)) is expected


def test_an_endpoint_spread_over_addresses_is_still_known_by_its_name():
    aws = Endpoint.parse("https://s3.eu-west-1.amazonaws.com").at("52.218.0.1")
    assert aws.is_aws and select_profile("auto", aws) is AWS
    assert aws.host == "s3.eu-west-1.amazonaws.com" and aws.label == "https://52.218.0.1:443"


def test_named_profile_and_unknown_name():
    assert select_profile("aws", Endpoint.parse("http://127.0.0.1:9000")) is AWS
    with pytest.raises(ConfigError, match="expected one of auto, aws, high-performance"):
        Settings(profile="fast")


def test_start_concurrency_uses_the_operations_own_direction():
    # 2 GB/s on AWS: uploads at 20 MB/s need 100 connections, downloads at 90 MB/s need 23.
    assert start_concurrency(AWS, Direction.UPLOAD, 2e9, 8, 256) == 100
    assert start_concurrency(AWS, Direction.DOWNLOAD, 2e9, 8, 256) == 23
    assert start_concurrency(HIGH_PERFORMANCE, Direction.UPLOAD, 2e9, 8, 256) == 20


def test_start_concurrency_is_clamped():
    assert start_concurrency(AWS, Direction.UPLOAD, 1e6, 8, 256) == 8
    assert start_concurrency(AWS, Direction.UPLOAD, 100e9, 8, 256) == 256
