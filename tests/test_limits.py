"""Where the limit is, on loopback against the session's moto: a store answering 503 to every
fifth request is `throttled`, one answering 50 ms late to an idle client is `server`, a target
below what it serves is `target`, and a client whose CPU a cgroup quota caps is `client-cpu`,
its adaptive controller holding flat and saying so. The network verdict needs shaped links:
tests/test_lab.py shows it on the lab."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import subprocess
import uuid
from pathlib import Path

import pytest
from conftest import CLI, ROOT, TEST_CREDENTIALS, cli_env, settings_for
from faults import FaultProxy, Rule
from proxy import TcpProxy

from s3dlio_ray._internal.model.results import RunResult
from s3dlio_ray._internal.model.vocabulary import Limit
from s3dlio_ray._internal.reports.files import limit_line
from s3dlio_ray._internal.run.launch import execute
from s3dlio_ray._internal.run.plan import plan_run

CPU_CGROUP = Path("/sys/fs/cgroup/cpu")


def timed_run(url: str, bucket: str, **overrides: object) -> RunResult:
    settings = settings_for(
        bucket, executor="local", duration_s=3, object_size="64KiB", verify=False, **overrides
    )
    return asyncio.run(execute(plan_run(settings, (url,), TEST_CREDENTIALS)))


@pytest.fixture
def bucket(boto3_s3) -> str:
    name = f"limits-{uuid.uuid4().hex[:8]}"
    boto3_s3.create_bucket(Bucket=name)
    return name


def test_a_store_throttling_every_fifth_request_is_throttled(moto_url, bucket):
    count = itertools.count(1)
    every_fifth = Rule(
        "503", lambda r: r.method == "GET" and r.of_an_object and next(count) % 5 == 0
    )
    every_fifth.times = 0
    with FaultProxy(moto_url, [every_fifth]) as proxy:
        result = timed_run(proxy.url, bucket, concurrency=4)
    get = result.phase("get")
    assert get is not None and get.bottleneck is not None
    verdict = get.bottleneck.cluster
    assert verdict.kind == Limit.THROTTLED, verdict
    assert 0.1 <= float(verdict.evidence["throttled_share"] or 0) <= 0.3
    line = limit_line(get)
    assert line is not None and "limited by the store's throttling" in line
    assert RunResult.from_json(result.to_json()).phases[1].bottleneck == get.bottleneck


def test_a_store_answering_late_to_an_idle_client_is_the_server(moto_url, bucket):
    host, port = moto_url.removeprefix("http://").split(":")
    settings = settings_for(
        bucket, executor="local", duration_s=3, object_size="64KiB", verify=False, concurrency=8
    )

    async def main() -> RunResult:
        proxy = await TcpProxy(host, int(port), response_delay_s=0.05).start()
        try:
            return await execute(plan_run(settings, (proxy.url,), TEST_CREDENTIALS))
        finally:
            await proxy.close()

    get = asyncio.run(main()).phase("get")
    assert get is not None and get.bottleneck is not None
    verdict = get.bottleneck.cluster
    assert verdict.kind == Limit.SERVER, verdict
    assert float(verdict.evidence["ttfb_p50_ms"] or 0) >= 50
    assert float(verdict.evidence["cpu"] or 1) < 0.5
    assert "limited by the server" in (limit_line(get) or "")


def test_a_target_below_what_the_store_serves_is_target(moto_url, bucket):
    result = timed_run(moto_url, bucket, target_gbps=0.002)
    get = result.phase("get")
    assert get is not None and get.bottleneck is not None
    verdict = get.bottleneck.cluster
    assert verdict.kind == Limit.TARGET, verdict
    assert verdict.evidence["cap"] == pytest.approx(0.002)
    assert 0.9 * 0.002 <= float(verdict.evidence["achieved"] or 0) <= 1.1 * 0.002
    assert "held at its target" in (limit_line(get) or "")


@pytest.mark.skipif(
    os.geteuid() != 0 or not (CPU_CGROUP / "cpu.cfs_quota_us").exists(),
    reason="a CPU quota needs root and cgroup v1's cpu controller (CI has both)",
)
def test_a_client_capped_by_a_cpu_quota_is_client_cpu_and_its_controller_holds(
    moto_url, bucket, tmp_path
):
    group = CPU_CGROUP / f"s3dlio-ray-test-{uuid.uuid4().hex[:6]}"
    group.mkdir()
    try:
        (group / "cpu.cfs_quota_us").write_text("20000")  # a fifth of a core
        command = [
            *CLI,
            "run",
            "configs/quick.yaml",
            "--executor",
            "local",
            "--endpoint",
            moto_url,
            "--bucket",
            bucket,
            "--duration",
            "4",
            "--object-size",
            "64KiB",
            "--metrics-port",
            "off",
            "--output",
            str(tmp_path),
        ]

        def join() -> None:
            (group / "cgroup.procs").write_text(str(os.getpid()))

        proc = subprocess.run(
            command,
            cwd=ROOT,
            env=cli_env(),
            capture_output=True,
            text=True,
            timeout=240,
            preexec_fn=join,
        )
    finally:
        group.rmdir()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads(next(tmp_path.glob("*.json")).read_text())
    get = next(p for p in doc["phases"] if p["phase"] == "get")
    verdict = get["bottleneck"]
    assert verdict["kind"] == "client-cpu", verdict
    assert verdict["evidence"]["capacity_cores"] == pytest.approx(0.2)
    assert verdict["evidence"]["quota_throttled"] > 0.25
    assert "GET" in proc.stdout and "limited by the client's CPU" in proc.stdout
    assert "the controllers held their limit" in proc.stdout
    assert verdict["evidence"]["controller_held"] > 0.5
    samples = get["actors"][0]["concurrency"]["samples"]
    held = [s for s in samples if s["held_by"] == "client-cpu"]
    assert held, samples
    assert len({s["limit"] for s in held}) == 1
    assert get["client_cost"]["cpu_s"] > 0 and get["client_cost"]["us_per_request"] > 0
