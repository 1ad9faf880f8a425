"""Ceph RGW, the gateway many users run, as a real part of the suite: the quick validation with
multipart objects, list/stat/delete, and `cp` up and down, with nothing left behind."""

from __future__ import annotations

import json
import uuid

import boto3
from conftest import cli_env, run_cli, valid_result
from rgw import ACCESS_KEY, SECRET_KEY


def _env() -> dict[str, str]:
    return cli_env(AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY)


def _s3(rgw):
    return boto3.client(
        "s3",
        endpoint_url=rgw.url,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name="us-east-1",
    )


def _run(rgw, tmp_path, name: str, *args: str) -> dict:
    out = tmp_path / f"{name}.json"
    proc = run_cli(
        "run",
        "configs/quick.yaml",
        "--endpoint",
        rgw.url,
        "--metrics-port",
        "off",
        "--executor",
        "local",
        "--output",
        str(out),
        "--quiet",
        *args,
        env=_env(),
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(out.read_text())


def test_quick_with_multipart_and_log_uniform_sizes_leaves_nothing(rgw, tmp_path):
    before = {b["Name"] for b in _s3(rgw).list_buckets()["Buckets"]}
    doc = _run(
        rgw,
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
    assert {b["Name"] for b in _s3(rgw).list_buckets()["Buckets"]} == before


def test_cp_up_and_down_through_rgw(rgw, tmp_path):
    bucket = f"cp-{uuid.uuid4().hex[:8]}"
    s3 = _s3(rgw)
    s3.create_bucket(Bucket=bucket)
    source = tmp_path / "set"
    source.mkdir()
    files = {f"f{i}.bin": bytes([i]) * (i * 70_000 + 1) for i in range(6)}
    files["big.bin"] = b"\x5a" * (12 * 1024 * 1024 + 3)  # multipart
    for name, body in files.items():
        (source / name).write_bytes(body)
    common = ["--endpoint", rgw.url, "--metrics-port", "off", "--quiet"]
    up = run_cli("cp", str(source), f"s3://{bucket}/set/", "--recursive", *common, env=_env())
    assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
    # RGW 16 takes checksum headers unchecked and keeps none: the summary says so.
    assert f"upload checked by: crc32 sent, not kept by the store {len(files)}" in up.stdout
    down = tmp_path / "back"
    got = run_cli("cp", f"s3://{bucket}/set/", str(down), "--recursive", *common, env=_env())
    assert got.returncode == 0, got.stdout[-3000:] + got.stderr[-3000:]
    assert {p.name: p.read_bytes() for p in down.iterdir()} == files
    again = run_cli(
        "cp", str(source), f"s3://{bucket}/set/", "--recursive", "--sync", *common, env=_env()
    )
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"])
    manifest = "set/.s3dlio-ray-manifest.json"
    assert keys == sorted([manifest, *(f"set/{name}" for name in files)])
    for key in keys:
        s3.delete_object(Bucket=bucket, Key=key)
    s3.delete_bucket(Bucket=bucket)
