"""`ray job submit` end to end: a head started here on loopback, the job, its objects and logs."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psutil
import pytest
import yaml
from conftest import ROOT, TEST_CREDENTIALS, valid_result

from s3dlio_ray._internal.storage.embedded import free_port

RAY = str(Path(sys.executable).with_name("ray"))


def stop_processes_under(folder: str) -> None:
    """Stop the Ray processes this test started (their command lines name its temp dir) only."""
    mine = []
    for process in psutil.process_iter(["cmdline"]):
        if any(folder in part for part in process.info["cmdline"] or []):
            mine.append(process)
    for process in mine:
        process.terminate()
    _, alive = psutil.wait_procs(mine, timeout=10)
    for process in alive:
        process.kill()


def distinct_free_ports(count: int) -> list[int]:
    """`count` different free ports: free_port() alone may give one it gave a moment ago (a run
    once handed the dashboard and the metrics export the same port, and `ray start` failed)."""
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


@pytest.fixture(scope="module")
def ray_head(moto_url):
    temp_dir = tempfile.mkdtemp(prefix="s3r-")
    names = (
        "--port",
        "--node-manager-port",
        "--object-manager-port",
        "--ray-client-server-port",
        "--dashboard-agent-listen-port",
        "--dashboard-agent-grpc-port",
        "--metrics-export-port",
        "--runtime-env-agent-port",
    )
    dashboard, *others = distinct_free_ports(1 + len(names))
    env = {
        **os.environ,
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        # Token authentication, as Ray 2.60 turns on by default, with a token of this test's own.
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": uuid.uuid4().hex + uuid.uuid4().hex,
        "AWS_ENDPOINT_URL": moto_url,
        "S3DLIO_METRICS_PORT": "0",
        "AWS_ACCESS_KEY_ID": TEST_CREDENTIALS.access_key_id,
        "AWS_SECRET_ACCESS_KEY": TEST_CREDENTIALS.secret_access_key,
    }
    env.pop("RAY_ADDRESS", None)
    ports = dict(zip(names, others, strict=True))
    first_worker = 20000 + (os.getpid() % 2000) * 10
    command = [
        RAY,
        "start",
        "--head",
        "--num-cpus",
        "2",
        "--include-dashboard",
        "true",
        "--dashboard-host",
        "127.0.0.1",
        "--dashboard-port",
        str(dashboard),
        "--node-ip-address",
        "127.0.0.1",
        "--temp-dir",
        temp_dir,
        "--min-worker-port",
        str(first_worker),
        "--max-worker-port",
        str(first_worker + 9),
        "--disable-usage-stats",
        *[str(x) for pair in ports.items() for x in pair],
    ]
    try:
        subprocess.run(command, env=env, check=True, capture_output=True, text=True, timeout=120)
        yield f"http://127.0.0.1:{dashboard}", env
    finally:
        stop_processes_under(temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)


def ray_job(env, *args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [RAY, "job", *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


def test_ray_job_submit_runs_the_rayjobs_entrypoint(ray_head, moto_url, boto3_s3):
    """The RayJob's own entrypoint, unchanged; the endpoint comes from the environment, as the
    ConfigMap gives it on Kubernetes."""
    address, env = ray_head
    rayjob = yaml.safe_load((ROOT / "deploy" / "kuberay" / "rayjob.yaml").read_text())
    entrypoint = rayjob["spec"]["entrypoint"]
    assert entrypoint == "python -m s3dlio_ray run configs/quick.yaml"
    job_id = f"s3dlio-ray-test-{uuid.uuid4().hex[:6]}"
    buckets_before = {b["Name"] for b in boto3_s3.list_buckets()["Buckets"]}
    submitted = ray_job(
        env,
        "submit",
        "--address",
        address,
        "--working-dir",
        ".",
        "--submission-id",
        job_id,
        "--no-wait",
        "--",
        *shlex.split(entrypoint),
    )
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    deadline = time.monotonic() + 180
    status = ""
    while time.monotonic() < deadline:
        reply = ray_job(env, "status", "--address", address, job_id)
        status = (reply.stdout + reply.stderr).lower()
        if any(f"job '{job_id}' {end}" in status for end in ("succeeded", "failed", "stopped")):
            break
        time.sleep(1)
    logs = ray_job(env, "logs", "--address", address, job_id).stdout
    assert f"job '{job_id}' succeeded" in status, status + logs
    assert "OK" in logs and "100/100" in logs and "bucket removed" in logs
    assert "embedded S3 endpoint" not in logs and moto_url in logs
    assert TEST_CREDENTIALS.secret_access_key not in logs
    assert {b["Name"] for b in boto3_s3.list_buckets()["Buckets"]} == buckets_before


def readme_submit_command() -> str:
    """The README's `ray job submit` line, its continuation lines joined."""
    readme = (ROOT / "README.md").read_text()
    start = readme.index(".venv/bin/ray job submit --address http://127.0.0.1:8265")
    block = readme[start : readme.index("```", start)]
    return block.replace("\\\n", " ").strip()


def test_the_readmes_submit_command_runs_and_leaves_its_results_in_the_store(
    ray_head, moto_url, boto3_s3
):
    """The README's command as written, pointed at this test's head, store and bucket; the
    job's results stay in the store after its working folder is gone."""
    address, env = ray_head
    bucket = f"results-{uuid.uuid4().hex[:8]}"
    boto3_s3.create_bucket(Bucket=bucket)
    command = (
        readme_submit_command()
        .replace(".venv/bin/ray", RAY)
        .replace("http://127.0.0.1:8265", address)
        .replace('"$PWD/.venv/bin/python"', shlex.quote(sys.executable))
        .replace("http://minio.example:9000", moto_url)
        .replace("s3://results/quick/", f"s3://{bucket}/quick/")
    )
    assert f"s3://{bucket}/quick/" in command and sys.executable in command
    done = subprocess.run(
        ["bash", "-c", command], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "succeeded" in done.stdout + done.stderr
    stored = [o["Key"] for o in boto3_s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert sorted(key.rsplit(".", 1)[1] for key in stored) == ["csv", "html", "json"]
    doc = json.loads(
        boto3_s3.get_object(Bucket=bucket, Key=next(k for k in stored if k.endswith(".json")))[
            "Body"
        ].read()
    )
    valid_result(doc)
    assert doc["ok"] is True and doc["phases"][1]["verified"] == 100
    assert f"stored: s3://{bucket}/quick/" in done.stdout
