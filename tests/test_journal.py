"""What a run owns: cleanup removes exactly its own keys and uploads, never another's, and a run
that writes refuses a prefix that already holds objects. Against a real moto server."""

from __future__ import annotations

import asyncio
import shlex
import time
import uuid

import pytest
from conftest import answering, incomplete_uploads, make_client, run_cli

from s3dlio_ray._internal.model.errors import ConfigError
from s3dlio_ray._internal.model.keys import KeyBounds
from s3dlio_ray._internal.storage.journal import (
    JOURNAL_NAME,
    cleanup,
    read_journal,
    refuse_a_used_prefix,
    write_journal,
)

OURS = ["p/r1/obj-00000000", "p/r1/obj-00000001.2", "p/r1/mixed-3-00000007"]


def keys_in(boto3_s3, bucket: str) -> list[str]:
    return sorted(o["Key"] for o in boto3_s3.list_objects_v2(Bucket=bucket).get("Contents", []))


def test_cleanup_removes_its_keys_uploads_journal_and_the_bucket_it_made(moto_url, boto3_s3):
    async def main():
        client = make_client(moto_url)
        assert await client.create_bucket("made-by-r1")
        await write_journal(client, "made-by-r1", "p", "r1", {"seed": 7, "bucket_created": True})
        journal = await read_journal(client, "made-by-r1", "p", "r1")
        for key in OURS:
            await client.put_object("made-by-r1", key, [b"z" * 100])
        await client.create_multipart_upload("made-by-r1", "p/r1/obj-00000009")
        result = await cleanup(client, "made-by-r1", "p", "r1", True, KeyBounds())
        await client.aclose()
        return journal, result

    journal, result = asyncio.run(main())
    assert journal["seed"] == 7 and journal["run_id"] == "r1"
    assert (result.deleted, result.aborted_uploads, result.bucket_removed) == (3, 1, True)
    assert "made-by-r1" not in [b["Name"] for b in boto3_s3.list_buckets()["Buckets"]]


def test_cleanup_never_touches_what_it_did_not_write_even_under_its_prefix(
    moto_url, boto3_s3, bucket
):
    theirs = ["p/r1/b.bin", "p/r1/obj-1", "p/r10/obj-00000000", "p/other/obj-00000000"]
    for key in theirs:
        boto3_s3.put_object(Bucket=bucket, Key=key, Body=b"mine")
    boto3_s3.create_multipart_upload(Bucket=bucket, Key="p/r1/their-upload")

    async def main():
        client = make_client(moto_url)
        for key in OURS:
            await client.put_object(bucket, key, [b"1"])
        await client.create_multipart_upload(bucket, "p/r1/obj-00000005")
        result = await cleanup(client, bucket, "p", "r1", True, KeyBounds())
        await client.aclose()
        return result

    result = asyncio.run(main())
    assert (result.deleted, result.aborted_uploads, result.bucket_removed) == (3, 1, False)
    assert keys_in(boto3_s3, bucket) == sorted(theirs)
    assert incomplete_uploads(boto3_s3, bucket) == ["p/r1/their-upload"]


def test_a_run_that_writes_refuses_a_prefix_that_holds_objects_and_its_hint_works(
    moto_url, boto3_s3, bucket
):
    boto3_s3.put_object(Bucket=bucket, Key="p/r1/obj-00000001", Body=b"mine")
    boto3_s3.put_object(Bucket=bucket, Key="p/r3/theirs.bin", Body=b"not ours")

    async def refused():
        client = make_client(moto_url)
        try:
            await refuse_a_used_prefix(client, bucket, "p", "r2", (moto_url,))
            with pytest.raises(ConfigError, match=r"no run of this tool wrote them") as err:
                await refuse_a_used_prefix(client, bucket, "p", "r3", (moto_url,))
            assert "cleanup" not in str(err.value)
            await write_journal(client, bucket, "p", "r1", {"bucket": bucket})
            with pytest.raises(ConfigError, match=r"s3://.*/p/r1/ already holds objects") as err:
                await refuse_a_used_prefix(client, bucket, "p", "r1", (moto_url,))
            return str(err.value)
        finally:
            await client.aclose()

    hint = asyncio.run(refused()).split("remove that run's objects with: ")[1]
    command = shlex.split(hint)
    assert command[:2] == ["s3dlio-ray", "cleanup"] and "--prefix" in command
    proc = run_cli(*command[1:])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert keys_in(boto3_s3, bucket) == ["p/r3/theirs.bin"]


def test_a_store_without_multipart_listing_still_cleans_up_with_a_warning(caplog):
    """A real HTTP server that lists one object of the run and answers 501 NotImplemented to
    listing multipart uploads."""
    listing = (
        b'<?xml version="1.0"?><ListBucketResult><IsTruncated>false</IsTruncated>'
        b"<Contents><Key>p/r1/obj-00000000</Key><Size>1</Size><ETag>x</ETag></Contents>"
        b"</ListBucketResult>"
    )
    deleted = b'<?xml version="1.0"?><DeleteResult><Deleted><Key>p/r1/obj-00000000</Key>'
    deleted += b"</Deleted></DeleteResult>"
    not_implemented = b"<Error><Code>NotImplemented</Code><Message>no</Message></Error>"
    seen = []

    def answer(head: str, _: bytes) -> bytes:
        line = head.split("\r\n")[0]
        seen.append(line)
        status, body = (
            (501, not_implemented)
            if "uploads" in line
            else (200, deleted)
            if line.startswith("POST")
            else (200, listing)
        )
        return b"HTTP/1.1 %d X\r\nContent-Length: %d\r\n\r\n%s" % (status, len(body), body)

    async def main():
        server = await asyncio.start_server(answering(answer), "127.0.0.1", 0)
        client = make_client(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}")
        try:
            return await cleanup(client, "b", "p", "r1", False, KeyBounds())
        finally:
            await client.aclose()
            server.close()

    result = asyncio.run(main())
    assert (result.deleted, result.aborted_uploads, result.failed) == (1, 0, ())
    assert any(
        "cannot list incomplete multipart uploads (NotImplemented)" in r.getMessage()
        for r in caplog.records
    )
    assert sum("uploads" in line for line in seen) == 1  # not retried: it will not change


def test_a_key_of_the_runs_naming_written_beside_it_survives_its_cleanup(
    moto_url, boto3_s3, bucket, credentials
):
    """Someone writes s3dlio-ray/RUN/obj-00009999 while a 60-object run goes: the run's
    cleanup removes its own 60 and leaves that one (and so the bucket)."""
    import s3dlio_ray

    run_id = f"race-{uuid.uuid4().hex[:8]}"
    racing = f"s3dlio-ray/{run_id}/obj-00009999"
    written = []

    def progress(seen) -> None:
        if not written and seen.phase == "put":
            boto3_s3.put_object(Bucket=bucket, Key=racing, Body=b"not the run's")
            written.append(racing)

    report = s3dlio_ray.run(
        "configs/quick.yaml",
        hooks=s3dlio_ray.Hooks(progress=progress),
        endpoint=moto_url,
        bucket=bucket,
        run_id=run_id,
        executor="local",
        objects=60,
        object_size="64KiB",
        concurrency=2,
        rate_limit="40 ops/s",
        metrics_port="off",
    )
    assert report.ok, report.error
    assert written and report.result.cleanup.deleted == 60
    assert keys_in(boto3_s3, bucket) == [racing]


@pytest.mark.parametrize(
    ("phases", "racing"),
    [
        ("put,get", ["obj-00000001.7", "mixed-0-00000000"]),
        ("put,mixed", ["obj-00000001.1", "mixed-0-99999999", "mixed-9999-00000000"]),
        ("checkpoint,restore", ["ckpt-0001-00000", "ckpt-0000-00099", "obj-00000000"]),
    ],
)
def test_keys_past_what_a_run_wrote_survive_its_cleanup(
    phases, racing, moto_url, boto3_s3, bucket, credentials
):
    """A timed PUT writes later rounds (obj-N.R) and a mixed phase new keys (mixed-T-N) for as
    long as it runs: its journal is rewritten with how far they went, and cleanup keeps to it;
    a checkpoint writes a shard per engine (ckpt-C-S) and a run without a PUT no object. Keys
    of that naming past it, written beside the run once it has claimed its prefix (its journal
    is there), are someone else's."""
    import threading

    import s3dlio_ray

    run_id = f"race-{uuid.uuid4().hex[:8]}"
    where = f"s3dlio-ray/{run_id}/"
    theirs = {f"{where}{name}" for name in racing}
    written = threading.Event()

    def race() -> None:
        deadline = time.monotonic() + 60
        while JOURNAL_NAME not in "".join(keys_in(boto3_s3, bucket)):
            if time.monotonic() > deadline:
                return
            time.sleep(0.02)
        for key in theirs:
            boto3_s3.put_object(Bucket=bucket, Key=key, Body=b"not the run's")
        written.set()

    racer = threading.Thread(target=race)
    racer.start()
    report = s3dlio_ray.run(
        "configs/quick.yaml",
        endpoint=moto_url,
        bucket=bucket,
        run_id=run_id,
        executor="local",
        phases=f"{phases},sleep,cleanup",  # the sleep: time for the racer before cleanup
        sleep_s=1.0,
        objects=5,
        object_size="4KiB",
        model_size="1MiB",
        duration_s=2.5,
        concurrency=2,
        rate_limit="8 ops/s",
        metrics_port="off",
    )
    racer.join()
    assert report.ok, report.error
    assert written.is_set() and report.result.cleanup.deleted > 0
    if phases == "put,get":
        assert report.result.phases[0].objects > 5  # later rounds were written
    # Everything the run wrote is gone (it deleted it), and nothing of anyone else.
    assert keys_in(boto3_s3, bucket) == sorted(theirs)


def test_cleanup_of_a_killed_run_keeps_to_the_bounds_its_journal_records(
    moto_url, boto3_s3, bucket, credentials
):
    import s3dlio_ray

    async def journal():
        client = make_client(moto_url)
        try:
            await write_journal(client, bucket, "p", "r7", {"bucket": bucket, "objects": 3})
        finally:
            await client.aclose()

    asyncio.run(journal())
    for index in (0, 1, 2, 7):
        boto3_s3.put_object(Bucket=bucket, Key=f"p/r7/obj-{index:08d}", Body=b"x")
    result = s3dlio_ray.cleanup_run("r7", endpoint=moto_url, bucket=bucket, prefix="p")
    assert result.deleted == 3
    assert keys_in(boto3_s3, bucket) == ["p/r7/obj-00000007"]
