"""Ctrl-C and SIGTERM during a PUT through Ray: the run stops in order, writes its partial result,
cleans up (or, on a second signal, says what is left and the command that removes it)."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import time
import uuid

import pytest
from conftest import CLI, ROOT, cli_env, incomplete_uploads, run_cli, stored_objects, valid_result


def interrupted_run(ray_cluster, moto_url, boto3_s3, bucket, tmp_path, signals):
    """A long multipart PUT, sent `signals` once objects are stored; answers the finished
    process, its result document and the run's key prefix."""
    run_id = f"sig-{uuid.uuid4().hex[:6]}"
    out = tmp_path / "run.json"
    args = [
        "run",
        "configs/quick.yaml",
        "--endpoint",
        moto_url,
        "--bucket",
        bucket,
        "--run-id",
        run_id,
        "--object-size",
        "11MiB",
        "--part-size-mb",
        "5",
        "--concurrency",
        "2",
        "--duration",
        "60",
        "--metrics-port",
        "off",
        "--output",
        str(out),
        "--quiet",
    ]
    process = subprocess.Popen(
        [*CLI, *args],
        cwd=ROOT,
        env=cli_env(RAY_ADDRESS=ray_cluster.address),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    prefix = f"s3dlio-ray/{run_id}/"
    deadline = time.monotonic() + 60
    while len(stored_objects(boto3_s3, bucket, prefix)) < 4 or not incomplete_uploads(
        boto3_s3, bucket
    ):
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.1)
    for signum in signals:
        process.send_signal(signum)
        time.sleep(0.2)
    stdout, stderr = process.communicate(timeout=60)
    return process.returncode, stdout, stderr, json.loads(out.read_text()), prefix


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_one_signal_stops_cleans_up_and_keeps_the_partial_result(
    signum, code, ray_cluster, moto_url, boto3_s3, bucket, tmp_path
):
    started = time.monotonic()
    returncode, stdout, stderr, doc, prefix = interrupted_run(
        ray_cluster, moto_url, boto3_s3, bucket, tmp_path, [signum]
    )
    assert returncode == code, stdout + stderr
    assert time.monotonic() - started < 50
    name = signal.Signals(signum).name
    assert f"s3dlio-ray: interrupted by {name}: result in " in stderr
    for noise in ("Traceback", "never retrieved", "\x1b["):
        assert noise not in stdout + stderr
    result = valid_result(doc)
    (put,) = result.phases
    assert put.ended_by == "interrupted" and put.objects >= 4
    assert result.error.startswith("interrupted") and result.cleanup.deleted >= 4
    assert stored_objects(boto3_s3, bucket, prefix, journal=True) == {}
    assert incomplete_uploads(boto3_s3, bucket) == []


def test_a_second_signal_skips_cleanup_and_names_the_command_that_does_it(
    ray_cluster, moto_url, boto3_s3, bucket, tmp_path
):
    returncode, stdout, stderr, doc, prefix = interrupted_run(
        ray_cluster, moto_url, boto3_s3, bucket, tmp_path, [signal.SIGINT, signal.SIGINT]
    )
    assert returncode == 130, stdout + stderr
    line = next(x for x in stderr.splitlines() if "interrupted by SIGINT" in x)
    assert f"not cleaned up: what the run wrote is left in s3://{bucket}/{prefix}" in line
    assert valid_result(doc).cleanup is None
    left = stored_objects(boto3_s3, bucket, prefix, journal=True)
    assert len(left) >= 5 and f"{prefix}.s3dlio-ray-run.json" in left
    boto3_s3.put_object(Bucket=bucket, Key=f"{prefix}notes.txt", Body=b"someone else's")
    command = shlex.split(line.split("remove it with: ")[1])
    assert command[:2] == ["s3dlio-ray", "cleanup"]
    proc = run_cli(*command[1:])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"{len(left) - 1} objects deleted" in proc.stdout
    assert stored_objects(boto3_s3, bucket, prefix, journal=True) == {f"{prefix}notes.txt": 14}
    assert incomplete_uploads(boto3_s3, bucket) == []
    again = run_cli(*command[1:])
    assert again.returncode == 1 and "no journal of run" in again.stderr


@pytest.mark.integration
@pytest.mark.parametrize("after_s", [0.3, 0.8])
def test_ctrl_c_while_the_command_loads_is_one_line(after_s):
    """SIGINT before the run could take it over (the modules still loading, or the settings
    being read): exit 130 and one line, never an import traceback."""
    process = subprocess.Popen(
        [*CLI, "run", "configs/quick.yaml", "--objects", "1", "--metrics-port", "off"],
        cwd=ROOT,
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    time.sleep(after_s)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    if "init_import_site" in stderr:
        return  # a machine so busy the signal came while Python itself started: not ours
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr[-2000:]
    # Before Python took SIGINT over, the default action ends the process at once (-2).
    assert process.returncode in (130, -signal.SIGINT), stderr
    assert len([line for line in stderr.splitlines() if line.strip()]) <= 1, stderr


def _started(args: list[str], env: dict[str, str], boto3_s3, bucket: str, prefix: str, objects):
    """The command in a process group of its own, once `objects` objects are stored under
    `prefix` (a multipart upload too, when `objects` is 0)."""
    process = subprocess.Popen(
        [*CLI, *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 90
    while len(stored_objects(boto3_s3, bucket, prefix)) < objects:
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.1)
    return process


def test_sigterm_to_the_process_group_kills_ray_and_the_driver_still_reports_and_cleans_up(
    moto_url, boto3_s3, bucket, tmp_path
):
    """What `timeout`, `kill -- -PGID` and a pod's stop do: SIGTERM to the command and the local
    Ray cluster it started, at once. The driver outlives Ray's processes: it cleans up with its
    own client, writes the result, exits 143 within 10 s; no Ray process outlives it long."""
    import psutil

    run_id = f"pg-{uuid.uuid4().hex[:6]}"
    out = tmp_path / "run.json"
    args = [
        "run", "configs/quick.yaml", "--endpoint", moto_url, "--bucket", bucket, "--run-id",
        run_id, "--executor", "ray", "--object-size", "1MiB", "--concurrency", "2",
        "--duration", "60", "--metrics-port", "off", "--output", str(out), "--quiet",
    ]  # fmt: skip
    prefix = f"s3dlio-ray/{run_id}/"
    process = _started(args, cli_env(), boto3_s3, bucket, prefix, 10)
    os.killpg(process.pid, signal.SIGTERM)
    signalled = time.monotonic()
    stdout, stderr = process.communicate(timeout=60)
    took = time.monotonic() - signalled
    assert process.returncode == 143, stdout + stderr
    assert took < 10, f"{took:.1f} s: {stderr}"
    for noise in ("Traceback", "GCS", "Segmentation", "core dumped"):
        assert noise not in stdout + stderr, stderr
    assert f"interrupted by SIGTERM: result in {out}; cleanup: " in stderr
    result = valid_result(json.loads(out.read_text()))
    (put,) = result.phases
    assert put.ended_by == "interrupted" and not put.failed
    if put.partial:  # the actors died before they sent their final statistics: the last ones
        assert "put: partial figures: actors were lost while the run stopped" in stdout
    else:
        assert put.objects >= 10
    # Everything stored is removed, what the figures counted or not.
    assert result.cleanup.deleted >= max(10, put.objects) and not result.cleanup.failed
    assert stored_objects(boto3_s3, bucket, prefix, journal=True) == {}
    deadline = time.monotonic() + 20
    while left := [p for p in psutil.process_iter(["pid"]) if _group(p) == process.pid]:
        assert time.monotonic() < deadline, [p.cmdline() for p in left]
        time.sleep(0.2)


def _group(process) -> int | None:
    try:
        return os.getpgid(process.pid)
    except OSError:
        return None


def test_sigterm_under_a_rate_limit_stops_within_the_grace(moto_url, boto3_s3, bucket, tmp_path):
    """A limiter holding the next request for seconds does not hold the stop: in-flight
    requests get the five-second grace, the limiter's wait none."""
    run_id = f"rl-{uuid.uuid4().hex[:6]}"
    out = tmp_path / "run.json"
    args = [
        "run", "configs/quick.yaml", "--endpoint", moto_url, "--bucket", bucket, "--run-id",
        run_id, "--executor", "local", "--object-size", "8MiB", "--set", "rate_limit=10 MiB/s",
        "--duration", "60", "--metrics-port", "off", "--output", str(out), "--quiet",
    ]  # fmt: skip
    process = _started(args, cli_env(), boto3_s3, bucket, f"s3dlio-ray/{run_id}/", 2)
    process.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    stdout, stderr = process.communicate(timeout=90)
    assert process.returncode == 143, stdout + stderr
    assert time.monotonic() - signalled < 10, stderr
    (put,) = valid_result(json.loads(out.read_text())).phases
    assert put.ended_by == "interrupted" and put.objects >= 2
    assert stored_objects(boto3_s3, bucket, f"s3dlio-ray/{run_id}/", journal=True) == {}


@pytest.mark.parametrize("during_run", [False, True])
def test_a_signal_while_the_result_is_written_lets_it_be_written(
    during_run, moto_url, boto3_s3, bucket, tmp_path
):
    """The run is over (its loop and handlers gone) and its files are being written: a signal
    now (a first, or a second after one that stopped the run) is noted, every file and the
    summary are still written, and the exit code says the command was stopped."""
    out = tmp_path / "run.json"
    args = [
        "run", "configs/quick.yaml", "--endpoint", moto_url, "--bucket", bucket, "--executor",
        "local", "--objects", "40", "--object-size", "64KiB", "--metrics-port", "off",
        "--output", str(out), "--quiet",
    ]  # fmt: skip
    if during_run:
        args += ["--set", "rate_limit=20 ops/s"]
    process = _started(args, cli_env(), boto3_s3, bucket, "s3dlio-ray/", 2 if during_run else 0)
    if during_run:
        process.send_signal(signal.SIGINT)
    while not out.exists() and process.poll() is None:
        time.sleep(0.005)
    # The summary's charts take a good part of a second after the result file: time to send.
    assert process.poll() is None, process.communicate()
    process.send_signal(signal.SIGINT if during_run else signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=60)
    assert "the run is over; writing its result" in stderr, stderr
    assert "Traceback" not in stderr and "before the run started" not in stderr
    assert out.with_suffix(".html").read_text().rstrip().endswith("</html>")
    assert "objects/s" in stdout  # the summary
    valid_result(json.loads(out.read_text()))
    if during_run:
        assert process.returncode == 130 and "interrupted by SIGINT: result in" in stderr
    else:
        assert process.returncode == 143
        assert f"SIGTERM came after the run ended: result in {out}" in stderr


@pytest.mark.parametrize(("after_s", "group"), [(2, False), (5, False), (7, True)])
def test_sigterm_while_ray_starts_is_one_line_and_143(after_s, group, moto_url, tmp_path):
    """Before and while Ray starts its local cluster (its handlers replace the process's own
    for a while, and its core worker turned SIGTERM into an abort with a C++ dump): exit 143,
    a line or two of this tool's own, and neither Ray's control store nor its raylet left
    running (Ray's agents, orphaned when a signal comes as the raylet starts them, end
    themselves within a minute)."""
    import psutil

    out = tmp_path / "run.json"
    args = [
        "run", "configs/quick.yaml", "--endpoint", moto_url, "--executor", "ray", "--objects",
        "20", "--object-size", "64KiB", "--metrics-port", "off", "--output", str(out),
        "--quiet",
    ]  # fmt: skip
    process = subprocess.Popen(
        [*CLI, *args],
        cwd=ROOT,
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    time.sleep(after_s)
    if group:
        os.killpg(process.pid, signal.SIGTERM)
    else:
        process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=90)
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert process.returncode == 143, stderr
    assert 1 <= len(lines) <= 2 and all(line.startswith("s3dlio-ray: ") for line in lines), lines
    deadline = time.monotonic() + 20
    while left := [p for p in psutil.process_iter(["pid", "name"]) if _ray_core(p, process.pid)]:
        assert time.monotonic() < deadline, [p.cmdline() for p in left]
        time.sleep(0.2)


def _ray_core(process, group: int) -> bool:
    return _group(process) == group and process.info["name"] in ("gcs_server", "raylet")
