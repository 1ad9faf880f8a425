"""The S3 implementations users run besides moto, each a real part of the suite: Ceph RGW (the
gateway many run) and SeaweedFS. The same matrix on each: the quick validation with multipart
and log-uniform sizes, list/stat/delete, data another client wrote with every check the store
allows, a training run, `cp` up, down and `--sync`, SIGTERM in the middle of a run, HTTP/2 that
the store does not speak; nothing left, and no check claimed that the store did not keep."""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import signal
import subprocess
import time
import uuid

import pytest
from conftest import (
    CLI,
    ROOT,
    incomplete_uploads,
    run_cli,
    settings_for,
    stored_objects,
    valid_result,
)
from test_train import train_settings

from s3dlio_ray._internal.model.vocabulary import Phase
from s3dlio_ray._internal.run.launch import execute
from s3dlio_ray._internal.run.plan import plan_run
from s3dlio_ray._internal.storage.s3.signing import StaticCredentials

MIB = 1024 * 1024


def _run(store, tmp_path, name: str, *args: str) -> dict:
    out = tmp_path / f"{name}.json"
    proc = run_cli(
        "run",
        "configs/quick.yaml",
        "--endpoint",
        store.url,
        "--metrics-port",
        "off",
        "--executor",
        "local",
        "--output",
        str(out),
        "--quiet",
        *args,
        env=store.env(),
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(out.read_text())


def _buckets(store) -> set[str]:
    return {b["Name"] for b in store.client().list_buckets()["Buckets"]}


def _new_bucket(store) -> str:
    name = f"t-{uuid.uuid4().hex[:10]}"
    store.client().create_bucket(Bucket=name)
    return name


def _empty(store, bucket: str) -> None:
    s3 = store.client()
    for key in stored_objects(s3, bucket, "", journal=True):
        s3.delete_object(Bucket=bucket, Key=key)
    s3.delete_bucket(Bucket=bucket)


def _in_process(store, settings):
    credentials = StaticCredentials(store.access_key, store.secret_key)
    return valid_result(
        asyncio.run(execute(plan_run(settings, (store.url,), credentials))).to_dict()
    )


def test_quick_with_multipart_and_log_uniform_sizes_leaves_nothing(store, tmp_path):
    before = _buckets(store)
    doc = _run(
        store,
        tmp_path,
        "quick",
        "--objects",
        "12",
        "--set",
        "object_size={distribution: log-uniform, min: 4KiB, max: 24MiB}",
        "--set",
        "phases=[put, get, list, stat, delete, cleanup]",
    )
    valid_result(doc)
    phases = {p["phase"]: p for p in doc["phases"]}
    assert phases["put"]["objects"] == 12 and phases["get"]["verified"] == 12
    assert phases["list"]["errors"] == phases["stat"]["errors"] == 0
    assert phases["delete"]["objects"] >= 12
    assert doc["cleanup"]["bucket_removed"] is True
    assert _buckets(store) == before


def _expected_check(s3, bucket: str, key: str, body: bytes) -> str:
    """The check an object can get, from what the store returns for it (boto3 as the oracle):
    a whole-object checksum it kept, else an ETag that is the body's MD5, else the length."""
    head = s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    headers = head["ResponseMetadata"]["HTTPHeaders"]
    if headers.get("x-amz-checksum-type", "FULL_OBJECT") != "COMPOSITE":
        for name in ("sha256", "sha1", "crc32"):
            if "-" not in headers.get(f"x-amz-checksum-{name}", "-"):
                return f"checksum-{name}"
    md5 = hashlib.md5(body, usedforsecurity=False).hexdigest()
    return "etag-md5" if head["ETag"].strip('"') == md5 else "length"


def test_data_another_client_wrote_is_checked_as_far_as_the_store_allows(store):
    """Objects boto3 stored with a SHA-256 or CRC32 checksum, plain, and as a multipart upload:
    each checked by what the store kept, never by a check it did not keep; nothing changed."""
    s3, bucket = store.client(), _new_bucket(store)
    rng = random.Random(3)
    bodies = {f"data/{i:02d}.bin": rng.randbytes(rng.randrange(1, 30_000)) for i in range(9)}
    for index, (key, body) in enumerate(bodies.items()):
        algorithm = ("SHA256", "CRC32", None)[index % 3]
        options = {"ChecksumAlgorithm": algorithm} if algorithm else {}
        s3.put_object(Bucket=bucket, Key=key, Body=body, **options)
    big = rng.randbytes(6 * MIB)
    upload = s3.create_multipart_upload(Bucket=bucket, Key="data/big.bin")
    parts = [
        {
            "PartNumber": n + 1,
            "ETag": s3.upload_part(
                Bucket=bucket,
                Key="data/big.bin",
                UploadId=upload["UploadId"],
                PartNumber=n + 1,
                Body=big[n * 5 * MIB : (n + 1) * 5 * MIB],
            )["ETag"],
        }
        for n in range(2)
    ]
    s3.complete_multipart_upload(
        Bucket=bucket,
        Key="data/big.bin",
        UploadId=upload["UploadId"],
        MultipartUpload={"Parts": parts},
    )
    bodies["data/big.bin"] = big
    expected: dict[str, int] = {}
    for key, body in bodies.items():
        kind = _expected_check(s3, bucket, key, body)
        expected[kind] = expected.get(kind, 0) + 1
    assert ("checksum-sha256" in expected) == store.keeps_checksums, expected
    settings = settings_for(
        bucket, executor="local", prefix="data/", phases=[{"get": {"source": "existing"}}]
    )
    (get,) = _in_process(store, settings).phases  # a flat prefix: the driver listed it
    assert get.objects == get.verified == len(bodies) and not get.failed
    assert dict(get.checks) == expected
    assert stored_objects(s3, bucket, "") == {k: len(b) for k, b in bodies.items()}
    _empty(store, bucket)


def test_a_training_run_writes_reads_and_removes_its_dataset(store):
    bucket = _new_bucket(store)
    settings = train_settings(bucket, executor="local", phases="datagen,train,cleanup")
    result = _in_process(store, settings)
    assert result.ok, result.error
    train = result.phase(Phase.TRAIN)
    assert train.training.samples == 2 * 18 and train.verified == 36 and not train.failed
    assert result.cleanup.deleted == 18 and not result.cleanup.failed
    assert stored_objects(store.client(), bucket, "", journal=True) == {}
    store.client().delete_bucket(Bucket=bucket)


def test_cp_up_and_down_with_checksum_claims_the_store_bears_out(store, tmp_path):
    s3, bucket = store.client(), _new_bucket(store)
    source = tmp_path / "set"
    source.mkdir()
    files = {f"f{i}.bin": bytes([i]) * (i * 70_000 + 1) for i in range(6)}
    files["big.bin"] = b"\x5a" * (12 * MIB + 3)  # multipart
    for name, body in files.items():
        (source / name).write_bytes(body)
    common = ["--endpoint", store.url, "--metrics-port", "off", "--executor", "local", "--quiet"]
    up = run_cli("cp", str(source), f"s3://{bucket}/set/", "--recursive", *common, env=store.env())
    assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
    claimed = next(line for line in up.stdout.splitlines() if "upload checked by" in line)
    # The claim is true of what the store returns for each file (the multipart one's checksum
    # composite, of its parts').
    for name in files:
        head = s3.head_object(Bucket=bucket, Key=f"set/{name}", ChecksumMode="ENABLED")
        kept = "x-amz-checksum-crc32" in head["ResponseMetadata"]["HTTPHeaders"]
        assert kept == store.keeps_checksums, name
    kept = "kept" if store.keeps_checksums else "not kept"
    assert claimed.endswith(f"upload checked by: crc32 sent, {kept} by the store {len(files)}")
    down = tmp_path / "back"
    got = run_cli("cp", f"s3://{bucket}/set/", str(down), "--recursive", *common, env=store.env())
    assert got.returncode == 0, got.stdout[-3000:] + got.stderr[-3000:]
    assert {p.name: p.read_bytes() for p in down.iterdir()} == files
    again = run_cli(
        "cp", str(source), f"s3://{bucket}/set/", "--recursive", "--sync", *common, env=store.env()
    )
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    manifest = "set/.s3dlio-ray-manifest.json"
    assert sorted(stored_objects(s3, bucket, "")) == sorted(
        [manifest, *(f"set/{name}" for name in files)]
    )
    _empty(store, bucket)


def test_sigterm_in_the_middle_of_a_run_cleans_up_everything(store, tmp_path):
    s3, bucket = store.client(), _new_bucket(store)
    out = tmp_path / "run.json"
    run_id = f"sig-{uuid.uuid4().hex[:6]}"
    process = subprocess.Popen(
        [*CLI, "run", "configs/quick.yaml", "--endpoint", store.url, "--bucket", bucket,
         "--run-id", run_id, "--object-size", "11MiB", "--part-size-mb", "5", "--concurrency",
         "2", "--duration", "60", "--metrics-port", "off", "--executor", "local", "--output",
         str(out), "--quiet"],
        cwd=ROOT,
        env=store.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    prefix = f"s3dlio-ray/{run_id}/"
    deadline = time.monotonic() + 60
    while len(stored_objects(s3, bucket, prefix)) < 2 or not incomplete_uploads(s3, bucket):
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.1)
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 143, stdout + stderr
    assert "interrupted by SIGTERM: result in" in stderr and "Traceback" not in stderr
    result = valid_result(json.loads(out.read_text()))
    assert result.phases[0].ended_by == "interrupted" and result.cleanup.deleted >= 2
    assert stored_objects(s3, bucket, "", journal=True) == {}
    assert incomplete_uploads(s3, bucket) == []
    s3.delete_bucket(Bucket=bucket)


def test_http2_is_one_line_where_the_store_does_not_speak_h2c(store, tmp_path):
    before = _buckets(store)
    proc = run_cli(
        "run", "configs/quick.yaml", "--endpoint", store.url, "--objects", "2", "--set",
        "http2=true", "--metrics-port", "off", "--executor", "local", "--output",
        str(tmp_path / "h2.json"), "--quiet", env=store.env(),
    )  # fmt: skip
    assert proc.returncode == 1, proc.stdout + proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and "does not speak HTTP/2 over cleartext (h2c)" in errors[0], errors
    assert _buckets(store) == before


@pytest.mark.parametrize("wrong", ["access key", "secret key"])
def test_bad_credentials_are_one_line_and_create_nothing(store, wrong, tmp_path):
    before = _buckets(store)
    keys = {"AWS_ACCESS_KEY_ID": store.access_key, "AWS_SECRET_ACCESS_KEY": store.secret_key}
    keys["AWS_ACCESS_KEY_ID" if wrong == "access key" else "AWS_SECRET_ACCESS_KEY"] = "wrong-one"
    env = {**store.env(), **keys}
    proc = run_cli(
        "run", "configs/quick.yaml", "--endpoint", store.url, "--objects", "2",
        "--metrics-port", "off", "--executor", "local", "--output", str(tmp_path / "c.json"),
        "--quiet", env=env,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "no phase ran" in proc.stdout and "┃" not in proc.stdout  # no empty table
    errors = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and "check your credentials" in errors[0], errors
    assert "wrong-one" not in proc.stdout + proc.stderr
    assert store.secret_key not in proc.stdout + proc.stderr
    assert _buckets(store) == before


def test_what_another_client_writes_in_the_runs_bucket_survives_its_cleanup(store, monkeypatch):
    """A run that creates its bucket, and another client that writes into it while the run
    goes (a key of the run's own naming past its bounds, and one of its own): cleanup removes
    the run's keys only and keeps the bucket, also where the store would delete a bucket that
    is not empty (SeaweedFS)."""
    import s3dlio_ray

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", store.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", store.secret_key)
    s3, bucket = store.client(), f"race-{uuid.uuid4().hex[:8]}"
    run_id = f"race-{uuid.uuid4().hex[:6]}"
    theirs = {f"s3dlio-ray/{run_id}/obj-00009999": 13, "their-notes.txt": 13}
    written: list[str] = []

    def progress(seen) -> None:
        if seen.phase == "put" and not written:
            for key in theirs:
                s3.put_object(Bucket=bucket, Key=key, Body=b"not the run's")
            written.extend(theirs)

    report = s3dlio_ray.run(
        "configs/quick.yaml",
        hooks=s3dlio_ray.Hooks(progress=progress),
        endpoint=store.url,
        bucket=bucket,
        run_id=run_id,
        executor="local",
        objects=60,
        object_size="64KiB",
        concurrency=2,
        rate_limit="20 ops/s",
        metrics_port="off",
    )
    assert report.ok, report.error
    assert written and report.result.bucket_created and report.result.cleanup.deleted == 60
    assert report.result.cleanup.bucket_removed is False
    assert stored_objects(s3, bucket, "", journal=True) == theirs
    _empty(store, bucket)
