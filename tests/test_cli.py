"""The command line end to end, as a user runs it, against real moto server processes."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import boto3
import pytest
from conftest import (
    CLI,
    ROOT,
    boto3_client,
    cli_env,
    ended_on_time,
    headless,
    run_cli,
    valid_result,
)

from s3dlio_ray._internal.storage.embedded import EmbeddedS3, free_port
from s3dlio_ray._internal.storage.s3.signing import StaticCredentials


@pytest.fixture(autouse=True)
def join_session_cluster(ray_cluster, monkeypatch):
    """Every run in this module joins the session's Ray cluster instead of starting its own."""
    monkeypatch.setenv("RAY_ADDRESS", ray_cluster.address)


def run_quick(*args: str, env: dict[str, str] | None = None):
    """`s3dlio-ray run configs/quick.yaml ARGS...` in a subprocess, on the session's Ray cluster."""
    return run_cli("run", "configs/quick.yaml", "--metrics-port", "0", *args, env=env)


def assert_one_line_error(proc: subprocess.CompletedProcess, code: int) -> str:
    assert proc.returncode == code, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    errors = [line for line in proc.stderr.splitlines() if line.startswith("s3dlio-ray: error:")]
    assert len(errors) == 1, proc.stderr
    return errors[0]


def test_quick_validation_scaled_down(moto_url, boto3_s3, tmp_path):
    out = tmp_path / "quick.json"
    proc = run_quick(
        "--endpoint",
        moto_url,
        "--objects",
        "12",
        "--object-size",
        "1MiB",
        "--output",
        str(out),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "OK" in proc.stdout
    result = json.loads(out.read_text())
    valid_result(result)
    put, get = result["phases"]
    assert (put["phase"], put["objects"], put["bytes"]) == ("put", 12, 12 * 2**20)
    assert (get["phase"], get["objects"], get["verified"], get["verify_failures"]) == (
        "get",
        12,
        12,
        0,
    )
    for phase in (put, get):
        assert phase["gbps"] > 0 and phase["latency"]["p99_s"] >= phase["latency"]["p50_s"] > 0
        assert phase["errors"] == 0
    assert result["cleanup"] == {
        **result["cleanup"],
        "deleted": 12,
        "aborted_uploads": 0,
        "bucket_removed": True,
        "failed": [],
    }
    assert result["bucket_created"] is True
    names = [b["Name"] for b in boto3_s3.list_buckets()["Buckets"]]
    assert result["bucket"] not in names


def test_multipart_objects_through_the_command_line(moto_url, tmp_path):
    out = tmp_path / "mp.json"
    proc = run_quick(
        "--endpoint",
        moto_url,
        "--objects",
        "3",
        "--object-size",
        "12MiB",
        "--part-size-mb",
        "5",
        "--concurrency",
        "4",
        "--output",
        str(out),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(out.read_text())
    assert [p["verified"] for p in result["phases"]] == [0, 3]
    # Concurrency is per actor; the cluster's is the sum over its actors (one per node here).
    assert result["cluster"]["actors"] == 3
    assert result["phases"][0]["concurrency"]["final"] == 4 * 3
    assert {a["concurrency"]["final"] for a in result["phases"][0]["actors"]} == {4}


def test_embedded_endpoint_when_none_is_configured(tmp_path):
    out = tmp_path / "embedded.json"
    proc = run_quick(
        "--objects",
        "4",
        "--object-size",
        "256KiB",
        "--output",
        str(out),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "embedded S3 endpoint (moto) at http://127.0.0.1:" in proc.stdout
    assert json.loads(out.read_text())["phases"][1]["verified"] == 4


def test_corrupted_object_is_reported_as_a_verification_failure(
    moto_url, boto3_s3, bucket, tmp_path
):
    run_id = f"corrupt-{uuid.uuid4().hex[:6]}"
    common = [
        "--endpoint",
        moto_url,
        "--bucket",
        bucket,
        "--run-id",
        run_id,
        "--seed",
        "7",
        "--objects",
        "5",
        "--object-size",
        "64KiB",
    ]
    proc = run_quick(
        *common,
        "--phases",
        "put",
        "--output",
        str(tmp_path / "put.json"),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    victim = f"s3dlio-ray/{run_id}/obj-00000003"
    body = bytearray(boto3_s3.get_object(Bucket=bucket, Key=victim)["Body"].read())
    body[40_000] ^= 0xFF
    boto3_s3.put_object(Bucket=bucket, Key=victim, Body=bytes(body))

    out = tmp_path / "get.json"
    proc = run_quick(*common, "--phases", "get,cleanup", "--output", str(out))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"{victim}: byte 40000 differs from what was written" in proc.stdout
    result = json.loads(out.read_text())
    get = result["phases"][0]
    assert (get["verified"], get["verify_failures"]) == (4, 1)
    assert list(get["failed"]) == [victim]
    assert result["ok"] is False
    assert boto3_s3.head_bucket(Bucket=bucket)  # not ours: kept
    assert "Contents" not in boto3_s3.list_objects_v2(Bucket=bucket, Prefix=f"s3dlio-ray/{run_id}")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--objects", "zero"], "objects: expected an integer in 1..1000000000000"),
        (["--set", "colour=blue"], "unknown key 'colour'"),
        (["--part-size-mb", "2"], "part_size_mb: expected an integer in 5..5120"),
    ],
)
def test_bad_configuration_is_one_line_and_exit_2(args, message):
    line = assert_one_line_error(run_quick(*args), 2)
    assert message in line


def test_bad_environment_variable_is_one_line():
    proc = run_quick(env=cli_env(S3DLIO_PART_SIZE_MB="big"))
    assert "environment variable S3DLIO_PART_SIZE_MB" in assert_one_line_error(proc, 2)


def test_unreachable_endpoint_is_one_line():
    proc = run_quick("--endpoint", "http://127.0.0.1:9", "--set", "max_attempts=2")
    line = assert_one_line_error(proc, 1)
    assert "cannot connect to 127.0.0.1:9" in line and "check --endpoint" in line
    assert "not cleaned up" not in proc.stdout, "it wrote nothing: nothing to remove"


@pytest.fixture(scope="module")
def authenticating_moto():
    """A moto server that checks SigV4, with one IAM user allowed to use S3."""
    with EmbeddedS3() as server:
        request = urllib.request.Request(
            f"{server.url}/moto-api/reset-auth",
            data=b"7",
            method="POST",
            headers={"Content-Type": "text/plain"},
        )
        urllib.request.urlopen(request).read()
        iam = boto3.client(
            "iam",
            endpoint_url=server.url,
            region_name="us-east-1",
            aws_access_key_id="bootstrap",
            aws_secret_access_key="bootstrap",
        )
        iam.create_user(UserName="runner")
        iam.put_user_policy(
            UserName="runner",
            PolicyName="s3",
            PolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
                }
            ),
        )
        key = iam.create_access_key(UserName="runner")["AccessKey"]
        iam.create_user(UserName="reader")
        iam.put_user_policy(
            UserName="reader",
            PolicyName="s3-but-put",
            PolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {"Effect": "Allow", "Action": "s3:*", "Resource": "*"},
                        {
                            "Effect": "Deny",
                            "Action": "s3:PutObject",
                            "Resource": "arn:aws:s3:::*/s3dlio-ray/*/obj-*",
                        },
                    ],
                }
            ),
        )
        reader = iam.create_access_key(UserName="reader")["AccessKey"]
        yield (
            server.url,
            StaticCredentials(key["AccessKeyId"], key["SecretAccessKey"]),
            StaticCredentials(reader["AccessKeyId"], reader["SecretAccessKey"]),
        )


def test_sigv4_with_correct_credentials_works(authenticating_moto, tmp_path):
    url, creds, _ = authenticating_moto
    env = cli_env(
        AWS_ACCESS_KEY_ID=creds.access_key_id, AWS_SECRET_ACCESS_KEY=creds.secret_access_key
    )
    proc = run_quick(
        "--endpoint",
        url,
        "--objects",
        "3",
        "--object-size",
        "100KiB",
        "--output",
        str(tmp_path / "r.json"),
        env=env,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with pytest.raises(Exception, match="SignatureDoesNotMatch"):
        boto3_client(url, StaticCredentials(creds.access_key_id, "wrong")).list_buckets()


def test_sigv4_wrong_secret_is_one_clear_line_and_never_printed(authenticating_moto, tmp_path):
    url, creds, _ = authenticating_moto
    wrong = "WrongSecret" + creds.secret_access_key[:8]
    env = cli_env(AWS_ACCESS_KEY_ID=creds.access_key_id, AWS_SECRET_ACCESS_KEY=wrong)
    out = tmp_path / "bad.json"
    proc = run_quick(
        "--endpoint",
        url,
        "--objects",
        "3",
        "--output",
        str(out),
        env=env,
    )
    line = assert_one_line_error(proc, 1)
    assert "signature does not match" in line and "check your credentials" in line
    assert "not cleaned up" not in proc.stdout, "it wrote nothing: nothing to remove"
    for text in (proc.stdout, proc.stderr, out.read_text()):
        assert wrong not in text
        assert creds.secret_access_key not in text


def test_a_fatal_error_in_the_actors_is_one_line_and_keeps_the_result(
    authenticating_moto, ray_cluster, tmp_path
):
    """A user who may not PUT the run's objects (its journal, yes): every actor on three nodes
    stops, the result is written with the error, and the run says so in one line."""
    url, admin, reader = authenticating_moto
    bucket = f"shared-{uuid.uuid4().hex[:8]}"
    boto3_client(url, admin).create_bucket(Bucket=bucket)
    env = cli_env(
        AWS_ACCESS_KEY_ID=reader.access_key_id,
        AWS_SECRET_ACCESS_KEY=reader.secret_access_key,
        RAY_ADDRESS=ray_cluster.address,
    )
    out = tmp_path / "denied.json"
    proc = run_quick(
        "--endpoint",
        url,
        "--bucket",
        bucket,
        "--objects",
        "30",
        "--object-size",
        "64KiB",
        "--output",
        str(out),
        env=env,
    )
    line = assert_one_line_error(proc, 1)
    assert "AccessDenied" in line and f"s3://{bucket}/s3dlio-ray/" in line
    result = valid_result(json.loads(out.read_text()))
    assert not result.ok and result.error == line.removeprefix("s3dlio-ray: error: ")
    (put,) = result.phases
    assert put.ended_by == "error" and put.errors >= 1 and len(result.cluster.nodes) == 3
    assert result.cleanup is not None and not result.cleanup.failed
    assert "Traceback" not in proc.stdout + proc.stderr


def test_long_workload_at_reduced_scale_sleeps_between_phases(tmp_path):
    """configs/long.yaml as shipped, with its counts and pauses overridden."""
    out = tmp_path / "long.json"
    started = time.monotonic()
    proc = run_cli(
        "run",
        "configs/long.yaml",
        "--metrics-port",
        "off",
        "--objects",
        "10",
        "--object-size",
        "64KiB",
        "--set",
        "sleep_s=1.5",
        "--output",
        str(out),
        "--quiet",
    )
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(out.read_text())
    valid_result(result)
    assert result["workload"] == "long"
    assert result["settings"]["phases"] == ["put", "sleep", "get", "sleep", "cleanup"]
    assert [p["phase"] for p in result["phases"]] == ["put", "get"]
    assert result["phases"][1]["verified"] == 10
    assert result["cleanup"]["deleted"] == 10
    assert elapsed >= 3.0  # the two pauses happened


def test_comprehensive_workload_runs_each_configuration_on_the_same_keys(
    moto_url, boto3_s3, chromium, tmp_path
):
    """configs/comprehensive.yaml as shipped (boto3 baseline, engine, two actors per node),
    scaled down; one table at the end with each configuration's ratio to the baseline."""
    out = tmp_path / "comp.json"
    proc = run_cli(
        "run",
        "configs/comprehensive.yaml",
        "--endpoint",
        moto_url,
        "--metrics-port",
        "off",
        "--objects",
        "9",
        "--object-size",
        "128KiB",
        "--set",
        "sleep_s=0.2",
        "--output",
        str(out),
        "--quiet",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    docs = {}
    for name in ("baseline", "enhanced", "multi-process"):
        doc = json.loads((tmp_path / f"comp-{name}.json").read_text())
        valid_result(doc)
        assert doc["configuration"] == name
        assert [p["phase"] for p in doc["phases"]] == ["put", "get"]
        assert doc["phases"][1]["verified"] == 9
        docs[name] = doc
    assert len({d["run_id"] for d in docs.values()}) == 1  # same keys: one run id, one seed
    assert len({d["seed"] for d in docs.values()}) == 1
    assert docs["baseline"]["phases"][0]["concurrency"]["final"] == 8 * 3  # boto3, fixed 8/actor
    assert docs["multi-process"]["cluster"]["actors"] == 2 * docs["enhanced"]["cluster"]["actors"]
    assert docs["baseline"]["cleanup"] is None and docs["multi-process"]["cleanup"]["deleted"] == 9
    assert docs["multi-process"]["cleanup"]["bucket_removed"] is True
    table = proc.stdout[proc.stdout.index("configurations (ratio") :]
    for name in docs:
        line = next(x for x in table.splitlines() if "put" in x and name in x)
        ratio = docs[name]["phases"][0]["gbps"] / docs["baseline"]["phases"][0]["gbps"]
        assert f"{ratio:.2f}x" in line
    assert docs["multi-process"]["bucket"] not in [
        b["Name"] for b in boto3_s3.list_buckets()["Buckets"]
    ]
    # Each configuration's HTML report compares them all: the ratio table, and GB/s and p99
    # bars for each phase and configuration, rendered by a real browser without errors.
    page = tmp_path / "comp-enhanced.html"
    dom = headless(chromium, tmp_path / "profile", "--dump-dom", page.as_uri())
    assert dom.returncode == 0 and "Uncaught" not in dom.stderr, dom.stderr[-2000:]
    comparison = dom.stdout[dom.stdout.index("Configuration comparison") :]
    for metric, phase, name in itertools.product(("gbps", "p99"), ("put", "get"), docs):
        assert f'id="comparison-{metric}-{phase}-{name}"' in comparison
    ratio = docs["multi-process"]["phases"][1]["gbps"] / docs["baseline"]["phases"][1]["gbps"]
    assert f"{ratio:.2f}x" in comparison
    for name in docs:
        assert f">{name}<" in comparison


def test_mixed_workload_keeps_its_mix_and_its_duration(moto_url, tmp_path):
    """configs/mixed.yaml as shipped, on a smaller key space for 4 s instead of 5 minutes."""
    out = tmp_path / "mixed.json"
    proc = run_cli(
        "run",
        "configs/mixed.yaml",
        "--endpoint",
        moto_url,
        "--metrics-port",
        "off",
        "--objects",
        "40",
        "--object-size",
        "16KiB",
        "--duration",
        "4",
        "--output",
        str(out),
        "--quiet",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(out.read_text())
    valid_result(result)
    prefill, mixed = result["phases"]
    assert prefill["phase"] == "put" and prefill["objects"] == 40
    assert mixed["phase"] == "mixed" and mixed["errors"] == 0
    assert ended_on_time(mixed["elapsed_s"], 4.0, mixed["latency"]["max_s"]), mixed["latency"]
    counts = {op: view["objects"] for op, view in mixed["by_op"].items()}
    total = sum(counts.values())
    assert total == mixed["objects"] >= 100
    for op, weight in {"get": 60, "put": 20, "stat": 10, "delete": 10}.items():
        # Each operation's share within four binomial deviations of its weight (at least 5
        # points): as close as the number of operations this machine managed can show.
        spread = 400 * (weight / 100 * (1 - weight / 100) / total) ** 0.5
        assert abs(100 * counts[op] / total - weight) < max(5, spread), counts
    assert mixed["verified"] == counts["get"] and mixed["verify_failures"] == 0
    assert result["cleanup"]["deleted"] == 40 + counts["put"] - counts["delete"]
    assert result["cleanup"]["bucket_removed"] is True


def test_mixed_without_a_duration_is_refused():
    line = assert_one_line_error(run_quick("--phases", "put,mixed"), 2)
    assert "mixed runs for a time: set duration_s (--duration SECONDS)" in line


def test_run_control_flags_reach_the_run(moto_url, tmp_path):
    """--duration, --rate-limit, a size distribution and --op-log, as a user types them."""
    out, oplog = tmp_path / "rc.json", tmp_path / "ops" / "rc.tsv.zst"
    proc = run_quick(
        "--endpoint",
        moto_url,
        "--objects",
        "20",
        "--object-size",
        "uniform:1KiB..8KiB",
        "--duration",
        "2",
        "--rate-limit",
        "60 ops/s",
        "--op-log",
        str(oplog),
        "--output",
        str(out),
        "--quiet",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(out.read_text())
    valid_result(result)
    put, get = result["phases"]
    for phase in (put, get):
        assert phase["ended_by"] == "duration"
        assert ended_on_time(phase["elapsed_s"], 2, phase["latency"]["max_s"]), phase["latency"]
        assert phase["ops_per_s"] <= 60 * 1.1
    assert "put (duration)" in proc.stdout
    assert result["settings"]["object_size"] == {
        "distribution": "uniform",
        "min": 1024,
        "max": 8192,
    }
    assert result["settings"]["rate_limit"] == "60.0 ops/s"
    files = list(oplog.parent.glob("rc-*.tsv.zst"))
    assert len(files) == result["cluster"]["actors"]
    assert f"op-log: one file per engine, {oplog.parent}/rc-*.tsv.zst" in proc.stdout


def test_a_bad_rate_limit_on_the_command_line_is_one_line():
    line = assert_one_line_error(run_quick("--rate-limit", "fast"), 2)
    assert "rate_limit: expected a rate such as 500 ops/s" in line


def test_a_stale_local_ray_record_is_one_line_not_a_hang(tmp_path):
    """A record left by a head that was killed, under a private RAY_TMPDIR."""
    (tmp_path / "ray").mkdir()
    dead = f"127.0.0.1:{free_port()}"
    (tmp_path / "ray" / "ray_current_cluster").write_text(dead)
    env = cli_env(RAY_TMPDIR=str(tmp_path))
    env.pop("RAY_ADDRESS", None)
    started = time.monotonic()
    on_ray = ("--objects", "1", "--executor", "ray")  # a small job would not start Ray at all
    line = assert_one_line_error(run_quick(*on_ray, env=env), 1)
    assert time.monotonic() - started < 30
    assert f"names {dead}, which does not answer" in line
    assert "ray stop" in line and "RAY_ADDRESS=local" in line
    env["RAY_ADDRESS"] = dead
    line = assert_one_line_error(run_quick(*on_ray, env=env), 1)
    assert f"the Ray cluster at {dead} does not answer" in line


def test_repeat_reports_each_phase_mean_with_its_interval_and_compare_reads_the_set(
    moto_url, tmp_path
):
    out = tmp_path / "rep.json"
    proc = run_cli(
        "run",
        "configs/quick.yaml",
        "--endpoint",
        moto_url,
        "--metrics-port",
        "off",
        "--executor",
        "local",
        "--objects",
        "12",
        "--object-size",
        "64KiB",
        "--repeat",
        "3",
        "--output",
        str(out),
        "--quiet",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    runs = [json.loads((tmp_path / f"rep-r{n}.json").read_text()) for n in (1, 2, 3)]
    assert len({r["run_id"] for r in runs}) == 3 and all(r["ok"] for r in runs)
    table = proc.stdout[proc.stdout.index("3 repeats, mean ± 95% interval") :]
    for phase in ("put", "get"):
        line = next(x for x in table.splitlines() if f"│ {phase} " in x)
        mean = sum(next(p for p in r["phases"] if p["phase"] == phase)["gbps"] for r in runs) / 3
        assert f"{mean:.3f} ± " in line
    assert f"repeats: {tmp_path / 'rep-repeats.json'}" in proc.stdout
    proc = run_cli(
        "compare", str(tmp_path / "rep-repeats.json"), str(tmp_path / "rep-repeats.json")
    )
    assert proc.returncode == 0, proc.stderr
    assert "within noise" in proc.stdout and "intervals: A 3 repeats, B 3 repeats" in proc.stdout
    proc = run_cli("run", "configs/quick.yaml", "--repeat", "2")
    assert proc.returncode == 2 and "repeat: 1, or at least 3" in proc.stderr


def test_small_jobs_start_no_ray_when_no_cluster_runs(moto_url, boto3_s3, bucket, tmp_path):
    """A one-file copy and a 20-object run: done in this process, before Ray would have
    started; Ray, started, would have made its folder under RAY_TMPDIR."""
    ray_tmp = Path(tempfile.mkdtemp(prefix="s3r-"))  # short: Ray's socket paths must fit
    env = cli_env(RAY_TMPDIR=str(ray_tmp))
    env.pop("RAY_ADDRESS")
    source = tmp_path / "model.pt"
    source.write_bytes(os.urandom(300_000))
    copied = run_cli(
        "cp",
        str(source),
        f"s3://{bucket}/ckpt/",
        "--endpoint",
        moto_url,
        "--metrics-port",
        "off",
        "--set",
        "max_attempts=3",
        "--output",
        str(tmp_path / "cp.json"),
        env=env,
    )
    assert copied.returncode == 0, copied.stdout + copied.stderr
    assert "a small job: run in this process, no Ray started" in copied.stdout
    body = boto3_s3.get_object(Bucket=bucket, Key="ckpt/model.pt")["Body"].read()
    assert body == source.read_bytes()
    ran = run_quick(
        "--endpoint",
        moto_url,
        "--objects",
        "20",
        "--object-size",
        "64KiB",
        "--output",
        str(tmp_path / "small.json"),
        env=env,
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    for name in ("cp.json", "small.json"):
        assert json.loads((tmp_path / name).read_text())["cluster"]["executor"] == "local"
    assert list(ray_tmp.iterdir()) == [], "Ray was started"
    big = run_quick(
        "--endpoint",
        moto_url,
        "--objects",
        "101",
        "--object-size",
        "1KiB",
        "--output",
        str(tmp_path / "big.json"),
        env=env,
    )
    assert big.returncode == 0, big.stdout + big.stderr
    assert "a small job" not in big.stdout and list(ray_tmp.iterdir()), "over 100 objects: Ray"
    shutil.rmtree(ray_tmp, ignore_errors=True)


def test_an_endpoint_that_never_answers_is_one_line_within_its_silence(tmp_path):
    """A server that takes connections and never says a byte: with a 2 s timeout and 3 s of
    silence allowed, the run ends after the second try, not after every retry's timeout."""
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []
    done = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not done.is_set():
            try:
                held.append(listener.accept()[0])
            except TimeoutError:
                continue
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    started = time.monotonic()
    try:
        proc = run_quick(
            "--endpoint", url, "--timeout", "2", "--set", "silence_s=3", "--objects", "1"
        )
    finally:
        done.set()
        for connection in held:
            connection.close()
        listener.close()
    elapsed = time.monotonic() - started
    line = assert_one_line_error(proc, 1)
    assert "no answer from the endpoint for 3 s: it is not answering" in line
    assert "(after 2 attempts;" in line and elapsed < 60


def _limited(*args: str, file_bytes: int) -> subprocess.CompletedProcess:
    """The command line with a limit on the size of the files it may write (`ulimit -f`), as a
    full disk shows itself; a private Ray cluster, never the session's."""
    import resource

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_bytes, file_bytes))

    return subprocess.run(
        [*CLI, "run", "configs/quick.yaml", "--metrics-port", "off", *args],
        cwd=ROOT,
        env=cli_env(RAY_ADDRESS="local"),
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=limit,
    )


def test_result_files_that_cannot_be_written_are_one_line_after_the_summary(
    moto_url, boto3_s3, tmp_path
):
    before = {b["Name"] for b in boto3_s3.list_buckets()["Buckets"]}
    out = tmp_path / "full" / "run.json"
    args = ["--endpoint", moto_url, "--executor", "local", "--objects", "4", "--output", str(out)]
    proc = _limited(*args, "--object-size", "64KiB", file_bytes=16384)
    line = assert_one_line_error(proc, 1)
    assert f"the result files could not be written under {out.parent}: File too large" in line
    assert "put" in proc.stdout and "cleanup: 4 objects deleted" in proc.stdout  # the summary
    assert {b["Name"] for b in boto3_s3.list_buckets()["Buckets"]} == before


def test_ray_that_cannot_start_for_a_file_size_limit_is_one_line_at_once(moto_url, tmp_path):
    started = time.monotonic()
    args = ["--endpoint", moto_url, "--executor", "ray", "--objects", "4"]
    proc = _limited(*args, "--output", str(tmp_path / "run.json"), file_bytes=16384)
    line = assert_one_line_error(proc, 1)
    assert "Ray cannot start a local cluster here: this process may write files of at most" in line
    assert "(ulimit -f)" in line and time.monotonic() - started < 30
