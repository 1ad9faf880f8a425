"""Data this tool did not write: a dataset another client put in a bucket is listed (or named by a
manifest), sharded over the suite's three Ray nodes, read once per epoch and checked as far as the
store allows; LIST, STAT and DELETE are measured phases with exact counts; nothing listed is ever
deleted unless a delete phase is told it may."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import random
import zlib

import pytest
from conftest import TEST_CREDENTIALS, boto3_client, settings_for, stored_objects, valid_result
from rich.console import Console

from s3dlio_ray._internal.model.checks import integrity_check
from s3dlio_ray._internal.model.content import VerificationError
from s3dlio_ray._internal.model.errors import ConfigError
from s3dlio_ray._internal.model.keys import KeyRange, Listing, Span, listings
from s3dlio_ray._internal.reports.files import print_summary
from s3dlio_ray._internal.run.launch import execute
from s3dlio_ray._internal.run.plan import plan_run

MIB = 1024 * 1024
STORED_AS = (("SHA256", "checksum-sha256"), ("CRC32", "checksum-crc32"), (None, "etag-md5"))
"""How the dataset's objects are stored, in turn: boto3's checksum algorithm, the check it gets."""


@pytest.fixture
def dataset(moto_url, boto3_s3, bucket):
    """Objects under dataset/: two folders and a few files at the top, stored by boto3 with a
    SHA-256 or CRC32 checksum, plain (ETag = MD5), or as a multipart upload (no whole MD5)."""
    plain = boto3_client(moto_url, request_checksum_calculation="when_required")
    rng = random.Random(7)
    layout = [f"dataset/train/img-{i:03d}.jpg" for i in range(30)]
    layout += [f"dataset/val/img-{i:03d}.jpg" for i in range(9)]
    layout += ["dataset/labels.csv", "dataset/README"]
    objects, checks = {}, {}
    for index, key in enumerate(layout):
        body = rng.randbytes(rng.randrange(1, 40_000))
        algorithm, kind = STORED_AS[index % 3]
        options = {"ChecksumAlgorithm": algorithm} if algorithm else {}
        (boto3_s3 if algorithm else plain).put_object(Bucket=bucket, Key=key, Body=body, **options)
        objects[key], checks[key] = len(body), kind
    big = rng.randbytes(6 * MIB)
    upload = boto3_s3.create_multipart_upload(Bucket=bucket, Key="dataset/train/big.bin")
    etags = [
        boto3_s3.upload_part(
            Bucket=bucket,
            Key="dataset/train/big.bin",
            UploadId=upload["UploadId"],
            PartNumber=n + 1,
            Body=big[n * 5 * MIB : (n + 1) * 5 * MIB],
        )["ETag"]
        for n in range(2)
    ]
    boto3_s3.complete_multipart_upload(
        Bucket=bucket,
        Key="dataset/train/big.bin",
        UploadId=upload["UploadId"],
        MultipartUpload={"Parts": [{"ETag": e, "PartNumber": n + 1} for n, e in enumerate(etags)]},
    )
    objects["dataset/train/big.bin"], checks["dataset/train/big.bin"] = len(big), "length"
    return objects, checks


def run(settings, url):
    return valid_result(
        asyncio.run(execute(plan_run(settings, (url,), TEST_CREDENTIALS))).to_dict()
    )


def tally(checks, times=1):
    counts = {}
    for kind in checks.values():
        counts[kind] = counts.get(kind, 0) + times
    return counts


def test_a_dataset_another_client_wrote_is_read_once_per_epoch_and_checked(
    ray_cluster, moto_url, boto3_s3, bucket, dataset
):
    objects, checks = dataset
    settings = settings_for(
        bucket,
        prefix="dataset/",
        phases=[{"get": {"source": "existing", "epochs": 2}}, {"stat": {"source": "existing"}}],
        ray_address=ray_cluster.address,
    )
    result = run(settings, moto_url)
    listing, get, stat = result.phases
    # The driver's delimiter listing found the 2 top-level files; the actors listed the folders.
    assert listing.phase == "list" and listing.objects == len(objects) - 2
    assert sum(1 for a in listing.actors if a.summary.objects) == 2
    assert result.ok and get.verify_failures == 0 and not get.failed
    assert get.objects == get.verified == 2 * len(objects)
    assert get.stats.bytes == 2 * sum(objects.values())
    assert dict(get.checks) == tally(checks, 2)
    assert len(get.actors) == 3 and all(a.summary.objects for a in get.actors)
    assert stat.objects == len(objects) and not stat.failed
    assert stored_objects(boto3_s3, bucket, "dataset/") == objects
    console = Console(record=True, width=200)
    print_summary(result, console)
    assert "get checked by: checksum-crc32 28, checksum-sha256 28, etag-md5 26, length 2" in (
        console.export_text()
    )


def test_a_manifest_skips_the_listing_and_may_leave_sizes_out(
    moto_url, boto3_s3, bucket, dataset, tmp_path
):
    objects, _ = dataset
    chosen = sorted(objects)[:12]
    manifest = tmp_path / "keys.txt"
    lines = [f"{key}\t{objects[key]}" for key in chosen[:-1]] + [chosen[-1]]
    manifest.write_text("# training subset\n" + "\n".join(lines) + "\n")
    settings = settings_for(
        bucket,
        executor="local",
        prefix="nowhere/",
        phases=[{"get": {"source": "existing", "manifest": str(manifest)}}],
    )
    (get,) = run(settings, moto_url).phases
    assert get.objects == get.verified == 12 and not get.failed
    assert get.stats.bytes == sum(objects[key] for key in chosen)
    assert stored_objects(boto3_s3, bucket, "dataset/") == objects


def test_a_later_run_with_the_same_id_verifies_every_byte_an_earlier_run_wrote(
    moto_url, boto3_s3, bucket
):
    first = settings_for(bucket, executor="local", phases="put", objects=20, object_size="8KiB")
    written = run(first, moto_url)
    assert written.phases[0].objects == 20
    later = settings_for(
        bucket, executor="local", run_id=first.run_id, phases=[{"get": {"source": "existing"}}]
    )
    reread = run(later, moto_url)
    listing, get = reread.phases
    assert listing.objects == 21
    assert reread.seed == written.seed
    assert dict(get.checks) == {"content": 20, "etag-md5": 1}  # and the run's journal
    assert get.verified == 21 and not get.failed


def test_list_stat_and_delete_count_exactly_what_the_bucket_holds(
    ray_cluster, moto_url, boto3_s3, bucket
):
    settings = settings_for(
        bucket,
        objects=250,
        object_size="1KiB",
        phases=[
            "put",
            {"list": {"page_size": 40}},
            "stat",
            {"delete": {"delete_batch": 100}},
            "cleanup",
        ],
        ray_address=ray_cluster.address,
    )
    put, listed, stat, delete = run(settings, moto_url).phases
    assert put.objects == listed.objects == stat.objects == delete.objects == 250
    assert not (listed.failed or stat.failed or delete.failed)
    assert listed.by_op["page"].objects >= 250 / 40
    assert delete.stats.latency.count == 3  # one DeleteObjects of 83 or 84 keys per actor
    assert stored_objects(boto3_s3, bucket, settings.prefix, journal=True) == {}


def test_existing_data_lists_by_folder_and_deletes_only_when_allowed(
    moto_url, boto3_s3, bucket, dataset
):
    objects, _ = dataset
    listing = settings_for(
        bucket, executor="local", prefix="dataset/", phases=[{"list": {"source": "existing"}}]
    )
    (listed,) = run(listing, moto_url).phases
    assert listed.objects == len(objects)
    mixed = settings_for(
        bucket,
        executor="local",
        prefix="dataset/",
        phases=[{"mixed": {"source": "existing", "duration_s": 2}}, "cleanup"],
        mix={"get": 50, "put": 25, "delete": 25},
        object_size="2KiB",
    )
    result = run(mixed, moto_url)
    assert result.ok and result.phases[1].by_op["delete"].objects > 0
    assert stored_objects(boto3_s3, bucket, "dataset/") == objects
    with pytest.raises(ConfigError, match="allow_delete_existing"):
        settings_for(bucket, prefix="dataset/", phases=[{"delete": {"source": "existing"}}])
    removal = settings_for(
        bucket,
        executor="local",
        prefix="dataset/val/",
        phases=[{"delete": {"source": "existing", "allow_delete_existing": True}}],
    )
    (deleted,) = run(removal, moto_url).phases  # a flat prefix: the driver's listing found it
    assert deleted.objects == 9
    assert stored_objects(boto3_s3, bucket, "dataset/") == {
        k: v for k, v in objects.items() if not k.startswith("dataset/val/")
    }


def test_a_run_key_space_lists_in_parts_that_cover_each_key_once():
    keys = KeyRange("p/", [Span(0, 10), Span(0, 4, 1)])
    parts = listings(keys, 4)
    names = sorted([*keys, "p/obj-00000009.3"])
    covered = [
        [
            n
            for n in names
            if n > part.start_after and (part.end_before is None or n < part.end_before)
        ]
        for part in parts
    ]
    assert [len(c) for c in covered] == [4 + 4, 4, 2 + 1]
    assert sorted(n for c in covered for n in c) == names
    assert all(isinstance(part, Listing) and part.prefix == "p/obj-" for part in parts)


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


def test_integrity_checks_use_what_the_store_keeps_and_catch_a_difference():
    body = memoryview(b"some object bytes")
    sha = _b64(hashlib.sha256(body).digest())
    crc = _b64(zlib.crc32(body).to_bytes(4, "big"))
    md5 = hashlib.md5(body).hexdigest()
    assert integrity_check("k", 17, body, {"x-amz-checksum-sha256": sha}) == "checksum-sha256"
    assert integrity_check("k", 17, body, {"x-amz-checksum-crc32": crc}) == "checksum-crc32"
    assert integrity_check("k", 17, body, {"etag": f'"{md5}"'}) == "etag-md5"
    assert integrity_check("k", 17, body, {"etag": f'"{md5}-2"'}) == "length"
    kms = {"etag": '"0123456789abcdef0123456789abcdef"', "x-amz-server-side-encryption": "aws:kms"}
    assert integrity_check("k", 17, body, kms) == "length"
    composite = {"x-amz-checksum-crc32": "AAAAAA==-3", "x-amz-checksum-type": "COMPOSITE"}
    assert integrity_check("k", 17, body, composite) == "length"
    with pytest.raises(VerificationError, match="sha256"):
        integrity_check("k", 17, body, {"x-amz-checksum-sha256": _b64(b"x" * 32)})
    with pytest.raises(VerificationError, match="MD5"):
        integrity_check("k", 17, body, {"etag": '"0123456789abcdef0123456789abcdef"'})
    with pytest.raises(VerificationError, match="the listing says 18"):
        integrity_check("k", 18, body, {})
